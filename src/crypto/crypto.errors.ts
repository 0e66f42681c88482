import { defineError } from '../platform/errors.ts';

/**
 * Errors a caller of `src/crypto` can see. Programming errors (a key of the wrong length, a chunk
 * size out of range) are plain `Error`s instead: they are bugs, not outcomes a user can cause.
 */
export const cryptoErrors = {
  /**
   * One code for every way authenticated decryption can fail (wrong key, wrong context, tampered,
   * truncated, malformed). Telling the causes apart to a client would only help an attacker probe.
   */
  decryptionFailed: defineError(
    'decryption_failed',
    'invalid',
    'The data could not be decrypted: it is corrupt, tampered with, truncated, or the key or context is wrong.',
  ),
  unknownKeyVersion: defineError(
    'unknown_key_version',
    'invalid',
    'The data was encrypted under a key version that is not available.',
    (keyVersion: number) => ({
      message: `no key with version ${keyVersion} is available`,
      details: { keyVersion },
    }),
  ),
};
