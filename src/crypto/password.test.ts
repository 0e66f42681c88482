import { describe, expect, it } from 'vitest';
import {
  argon2Parameters,
  hashPassword,
  isWeakerThanCurrent,
  legacyPasswordHash,
  verifyPassword,
} from './password.ts';

describe('password hashing', () => {
  it('stores argon2id PHC strings with the configured parameters and a fresh salt each time', async () => {
    const a = await hashPassword('correct horse battery staple');
    const b = await hashPassword('correct horse battery staple');
    const { memoryCost: m, timeCost: t, parallelism: p } = argon2Parameters;
    expect(a).toMatch(new RegExp(`^\\$argon2id\\$v=19\\$m=${m},t=${t},p=${p}\\$`));
    expect(a).not.toBe(b);
    expect(await verifyPassword(a, 'correct horse battery staple')).toEqual({ ok: true, needsRehash: false });
    expect(await verifyPassword(a, 'correct horse battery stapl')).toEqual({ ok: false, needsRehash: false });
  });

  it('asks for a rehash when the stored parameters are weaker than today', () => {
    expect(isWeakerThanCurrent('$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA')).toBe(true);
    expect(isWeakerThanCurrent('$argon2id$v=19$m=19456,t=1,p=1$c2FsdHNhbHQ$aGFzaA')).toBe(true);
    expect(isWeakerThanCurrent('$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA')).toBe(false);
    expect(isWeakerThanCurrent('$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA')).toBe(true);
  });

  it('verifies imported salted SHA-256/SHA-512 hashes once, and asks to replace them', async () => {
    for (const algorithm of ['sha256', 'sha512'] as const) {
      const stored = legacyPasswordHash(algorithm, 'pepper-and-salt', 'an old but long password');
      expect(await verifyPassword(stored, 'an old but long password')).toEqual({
        ok: true,
        needsRehash: true,
      });
      expect(await verifyPassword(stored, 'an old but long passwore')).toEqual({
        ok: false,
        needsRehash: false,
      });
    }
  });

  it('rejects anything that is not a hash it knows', async () => {
    for (const stored of [
      '',
      'plaintext',
      'md5$salt$5f4dcc3b5aa765d61d8327deb882cf99',
      '$argon2id$garbage',
    ]) {
      expect((await verifyPassword(stored, 'plaintext')).ok).toBe(false);
    }
  });
});
