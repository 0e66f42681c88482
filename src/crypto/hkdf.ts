import { hkdfSync } from 'node:crypto';

/** SHA-256 output size; RFC 5869 §2.3 caps HKDF output at 255 times this. */
const sha256SizeBytes = 32;

/**
 * HKDF-SHA-256 (RFC 5869): derives `lengthBytes` of key material from a uniformly random
 * `inputKey` (a DEK). `salt` makes derived keys independent per object (RFC 5869 §3.1; an empty salt
 * is fine when `inputKey` is already uniformly random); `info` separates purposes so a key derived
 * for one use can never be confused with one for another (§3.2). Use a versioned `info` such as
 * `strongroom/stream/v1`.
 */
export function deriveKey(inputKey: Uint8Array, salt: Uint8Array, info: string, lengthBytes = 32): Buffer {
  if (inputKey.length === 0) throw new Error('HKDF input key must not be empty');
  if (info.length === 0) throw new Error('HKDF info must name the purpose of the derived key');
  if (!Number.isInteger(lengthBytes) || lengthBytes < 1 || lengthBytes > 255 * sha256SizeBytes) {
    throw new Error(`HKDF output length must be 1..${255 * sha256SizeBytes} bytes`);
  }
  return Buffer.from(hkdfSync('sha256', inputKey, salt, info, lengthBytes));
}
