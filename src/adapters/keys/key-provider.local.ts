import { openAesGcm, sealAesGcm } from '../../crypto/aead.ts';
import { deriveKey } from '../../crypto/hkdf.ts';
import type { KeyProvider, WrappedKey } from '../../modules/keys/key-provider.port.ts';
import { keyErrors } from '../../modules/keys/keys.errors.ts';

/**
 * The `local` key provider: the master key (32 bytes) in process memory, read from
 * STRONGROOM_MASTER_KEY or a 0600 file. During a master-key rotation it also holds the previous key,
 * so data keys not yet rewrapped stay readable.
 */
export class LocalKeyProvider implements KeyProvider {
  readonly kind = 'local';
  readonly currentKekId: string;
  readonly #keys: Map<string, Buffer>;

  constructor(options: { current: Uint8Array; previous?: Uint8Array | undefined }) {
    this.#keys = new Map();
    this.currentKekId = addKey(this.#keys, options.current);
    if (options.previous) addKey(this.#keys, options.previous);
  }

  canUnwrap(kekId: string): boolean {
    return this.#keys.has(kekId);
  }

  async wrap(plaintext: Uint8Array, aad: Uint8Array): Promise<WrappedKey> {
    // AES-256-GCM with a random 96-bit nonce: safe far beyond the number of data keys we will wrap.
    const kek = this.#keys.get(this.currentKekId)!;
    return { kekId: this.currentKekId, ciphertext: sealAesGcm(kek, plaintext, aad) };
  }

  async unwrap(wrapped: WrappedKey, aad: Uint8Array): Promise<Buffer> {
    const kek = this.#keys.get(wrapped.kekId);
    if (!kek) throw keyErrors.masterKeyUnknown(wrapped.kekId);
    return openAesGcm(kek, wrapped.ciphertext, aad);
  }
}

/**
 * A KEK's id is derived from it (HKDF, then 8 bytes as hex): stable, distinct per key, and revealing
 * nothing usable about the key itself.
 */
export function localKekId(kek: Uint8Array): string {
  return `local:${deriveKey(kek, Buffer.alloc(0), 'strongroom/kek-id/v1', 8).toString('hex')}`;
}

function addKey(keys: Map<string, Buffer>, key: Uint8Array): string {
  if (key.length !== 32) throw new Error('a master key must be 32 bytes');
  const id = localKekId(key);
  keys.set(id, Buffer.from(key));
  return id;
}
