import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 128 bits is the floor for a secret that an attacker may try to guess online or offline. */
const minRandomBytesCount = 16;

/**
 * Lowercase letters and digits only, so the first `_` of a token always ends its prefix (the random
 * part is base64url and may contain `_` itself).
 */
const prefixPattern = /^[a-z][a-z0-9]*$/;

/**
 * A new bearer secret (session token, API key, invite link): `${prefix}_${base64url(random)}`. The
 * prefix says what kind of secret it is, which helps secret scanners and support staff.
 *
 * Default 32 random bytes (256 bits): 128 would resist a single-target guess, but with N live tokens
 * an attacker guessing any of them gains a factor N, and a stored SHA-256 hash should stay
 * infeasible to invert with margin to spare. 256 bits keeps both far out of reach for a few bytes.
 */
export function generateToken(prefix: string, randomBytesCount = 32): string {
  if (!prefixPattern.test(prefix)) throw new Error('token prefix must be lowercase letters and digits');
  if (!Number.isInteger(randomBytesCount) || randomBytesCount < minRandomBytesCount) {
    throw new Error(`a token needs at least ${minRandomBytesCount} random bytes (128 bits)`);
  }
  return `${prefix}_${randomBytes(randomBytesCount).toString('base64url')}`;
}

/**
 * SHA-256 of the token's UTF-8 bytes: what we store and look tokens up by, so a database leak does
 * not hand out working tokens.
 *
 * A fast, unsalted hash is right here and wrong for passwords: a token has ≥128 bits of entropy, so
 * no amount of hashing speed makes guessing it feasible, and no salt is needed because two tokens
 * never share a value. Passwords are low-entropy and need a slow, salted KDF (argon2id) to make
 * guessing expensive; using one for tokens would only add latency (and a DoS lever) to every
 * request and prevent lookup by hash.
 */
export function hashToken(token: string): Buffer {
  return digestSha256(token);
}

/** `hashToken` as lowercase hex (for text columns and logs-safe identifiers). */
export function hashTokenHex(token: string): string {
  return hashToken(token).toString('hex');
}

/**
 * Compares two secrets in time that depends on neither's content. `timingSafeEqual` needs equal
 * lengths, and returning early on a length mismatch would leak the secret's length; comparing the
 * SHA-256 digests of both instead always compares 32 bytes. Equal digests mean equal inputs (SHA-256
 * is collision resistant). Strings are compared as UTF-8.
 */
export function constantTimeEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  return timingSafeEqual(digestSha256(a), digestSha256(b));
}

function digestSha256(value: Uint8Array | string): Buffer {
  const hash = createHash('sha256');
  if (typeof value === 'string') hash.update(value, 'utf8');
  else hash.update(value);
  return hash.digest();
}
