import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { cryptoErrors } from './crypto.errors.ts';

/** AES-256: a 32-byte key gives a 128-bit security margin even against Grover-style search. */
export const aesKeySizeBytes = 32;

/**
 * 96-bit nonces are the size GCM is designed for (NIST SP 800-38D §8.2): any other length is run
 * through GHASH first and weakens the uniqueness argument.
 */
export const aesGcmNonceSizeBytes = 12;

/** Full 128-bit tags; truncated GCM tags lose forgery resistance quickly (SP 800-38D Appendix C). */
export const aesGcmTagSizeBytes = 16;

const algorithm = 'aes-256-gcm';

/**
 * Encrypts `plaintext` with AES-256-GCM under a fresh random nonce and returns
 * `nonce(12) ‖ ciphertext ‖ tag(16)`. `aad` is authenticated but not encrypted: bind the context the
 * ciphertext belongs to (tenant id, key version, …) so it cannot be moved elsewhere.
 *
 * Random 96-bit nonces are safe for up to 2^32 messages per key (SP 800-38D §8.3); keys are
 * per-tenant and rotated, which keeps every key far below that.
 */
export function sealAesGcm(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = randomBytes(aesGcmNonceSizeBytes);
  return Buffer.concat([nonce, sealAesGcmWithNonce(key, nonce, plaintext, aad)]);
}

/**
 * Reverses `sealAesGcm`. Throws `decryption_failed` on any failure: wrong key, wrong `aad`, a flipped
 * bit, or input too short to hold a nonce and a tag.
 */
export function openAesGcm(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer {
  assertAesKey(key);
  if (sealed.length < aesGcmNonceSizeBytes + aesGcmTagSizeBytes) throw cryptoErrors.decryptionFailed();
  const nonce = sealed.subarray(0, aesGcmNonceSizeBytes);
  return openAesGcmWithNonce(key, nonce, sealed.subarray(aesGcmNonceSizeBytes), aad);
}

/**
 * AES-256-GCM with a caller-chosen nonce; returns `ciphertext ‖ tag(16)`. The caller guarantees the
 * nonce never repeats under `key`: a repeat reveals the XOR of two plaintexts and the GHASH key.
 * Used by the streaming format, whose nonces are a random prefix and a chunk counter.
 */
export function sealAesGcmWithNonce(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Buffer {
  assertAesKey(key);
  assertNonce(nonce);
  const cipher = createCipheriv(algorithm, key, nonce, { authTagLength: aesGcmTagSizeBytes });
  cipher.setAAD(aad);
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/**
 * Reverses `sealAesGcmWithNonce` (`ciphertext ‖ tag(16)`). Throws `decryption_failed` if the tag does
 * not verify; no plaintext is returned unless it does.
 */
export function openAesGcmWithNonce(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Buffer {
  assertAesKey(key);
  assertNonce(nonce);
  if (sealed.length < aesGcmTagSizeBytes) throw cryptoErrors.decryptionFailed();
  const tagOffset = sealed.length - aesGcmTagSizeBytes;
  try {
    // authTagLength pins the tag size so a shortened tag can never be accepted.
    const decipher = createDecipheriv(algorithm, key, nonce, { authTagLength: aesGcmTagSizeBytes });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(tagOffset));
    const plaintext = decipher.update(sealed.subarray(0, tagOffset));
    // final() is where the tag is checked; until it returns, `plaintext` is unauthenticated.
    return Buffer.concat([plaintext, decipher.final()]);
  } catch {
    throw cryptoErrors.decryptionFailed();
  }
}

/**
 * Encodes context parts as associated data without ambiguity: each part is a uint32 BE byte length
 * followed by its bytes (strings as UTF-8). Joining with a separator would let `('a:b', 'c')` and
 * `('a', 'b:c')` collide; length prefixes make the encoding prefix-free, so distinct part lists
 * always give distinct bytes.
 */
export function encodeAad(parts: ReadonlyArray<string | Uint8Array>): Buffer {
  const encoded: Buffer[] = [];
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    encoded.push(length, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
  }
  return Buffer.concat(encoded);
}

/** Throws a plain `Error` (a programming error, not a user-visible one) unless `key` is 32 bytes. */
export function assertAesKey(key: Uint8Array, name = 'key'): void {
  if (!(key instanceof Uint8Array) || key.length !== aesKeySizeBytes) {
    throw new Error(`${name} must be ${aesKeySizeBytes} bytes for AES-256`);
  }
}

function assertNonce(nonce: Uint8Array): void {
  if (nonce.length !== aesGcmNonceSizeBytes) throw new Error(`nonce must be ${aesGcmNonceSizeBytes} bytes`);
}
