import { createHash, timingSafeEqual } from 'node:crypto';
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';

/**
 * Password hashing: argon2id (RFC 9106), stored as a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
 * Parameters are OWASP's first recommendation for argon2id: 19 MiB memory, 2 passes, 1 lane. Raising
 * them later is safe: a login that verifies against weaker parameters rehashes (`needsRehash`).
 */
export const argon2Parameters = {
  memoryCost: 19_456, // KiB
  timeCost: 2,
  parallelism: 1,
} as const;

/** @node-rs/argon2's Algorithm.Argon2id (a const enum, which erasable TypeScript cannot import). */
const argon2id = 2;

export async function hashPassword(password: string): Promise<string> {
  return argon2Hash(password, { ...argon2Parameters, algorithm: argon2id });
}

export interface PasswordCheck {
  ok: boolean;
  /** True when the stored hash should be replaced by `hashPassword(password)` (legacy, or weaker parameters). */
  needsRehash: boolean;
}

/**
 * Verifies `password` against a stored hash: argon2id PHC strings, or an imported legacy hash
 * `sha256$<salt>$<hex>` / `sha512$<salt>$<hex>` where hex = SHA-2(salt ‖ password), salt as stored
 * (the "SHA-2 with a per-user salt" scheme of older systems). Legacy hashes always need a rehash.
 */
export async function verifyPassword(stored: string, password: string): Promise<PasswordCheck> {
  if (stored.startsWith('$argon2')) {
    const ok = await argon2Verify(stored, password).catch(() => false);
    return { ok, needsRehash: ok && isWeakerThanCurrent(stored) };
  }
  const legacy = /^(sha256|sha512)\$([^$]{1,256})\$([0-9a-f]{64}|[0-9a-f]{128})$/.exec(stored);
  if (legacy) {
    const [, algorithm, salt, expectedHex] = legacy as unknown as [
      string,
      'sha256' | 'sha512',
      string,
      string,
    ];
    const actual = createHash(algorithm).update(salt, 'utf8').update(password, 'utf8').digest();
    const expected = Buffer.from(expectedHex, 'hex');
    const ok = actual.length === expected.length && timingSafeEqual(actual, expected);
    return { ok, needsRehash: ok };
  }
  return { ok: false, needsRehash: false };
}

/** Whether a PHC string's m, t or p are below the current parameters (or it is not argon2id). */
export function isWeakerThanCurrent(phc: string): boolean {
  const match = /^\$argon2id\$v=\d+\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(phc);
  if (!match) return true;
  const [m, t, p] = match.slice(1).map(Number) as [number, number, number];
  return m < argon2Parameters.memoryCost || t < argon2Parameters.timeCost || p < argon2Parameters.parallelism;
}

/**
 * Computes a legacy hash in the import format; for tests and import tooling only: never used to
 * store a new password.
 */
export function legacyPasswordHash(algorithm: 'sha256' | 'sha512', salt: string, password: string): string {
  return `${algorithm}$${salt}$${createHash(algorithm).update(salt, 'utf8').update(password, 'utf8').digest('hex')}`;
}
