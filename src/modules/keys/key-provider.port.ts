/**
 * Holds the master key (KEK) and only wraps and unwraps data keys with it; the KEK itself never
 * leaves the provider. `local` keeps it in process memory (from env or a 0600 file); the port admits
 * Vault transit or a cloud KMS, whose KEK never reaches this process at all.
 */
export interface KeyProvider {
  readonly kind: string;
  /** Identifies the KEK used for new wraps: a fingerprint, not secret, stored beside each wrapped key. */
  readonly currentKekId: string;
  /** Whether a key wrapped under `kekId` can be unwrapped here (the current or a previous KEK). */
  canUnwrap(kekId: string): boolean;
  wrap(plaintext: Uint8Array, aad: Uint8Array): Promise<WrappedKey>;
  /** Rejects with `master_key_unknown` if `kekId` is not configured, `decryption_failed` if tampered. */
  unwrap(wrapped: WrappedKey, aad: Uint8Array): Promise<Buffer>;
}

export interface WrappedKey {
  readonly kekId: string;
  readonly ciphertext: Uint8Array;
}
