import { describe, expect, it } from 'vitest';
import { acceptNewPassword, maxPasswordBytes } from './password-policy.ts';

const context = ['ada@example.com', 'ada', 'acme', 'Acme Ltd'];
const accept = (password: unknown, hasMfa = false) => acceptNewPassword(password, { hasMfa, context });

describe('password policy (NIST SP 800-63B rev 4)', () => {
  it('needs 15 characters without MFA and 8 with it, counting characters not bytes', () => {
    expect(() => accept('fourteen chars')).toThrow(expect.objectContaining({ code: 'password_too_short' }));
    expect(accept('fifteen chars!!')).toBe('fifteen chars!!');
    expect(accept('zebra lamp', true)).toBe('zebra lamp');
    expect(() => accept('7 chars', true)).toThrow(expect.objectContaining({ code: 'password_too_short' }));
    expect(accept('ünïcödé pässwörd')).toBe('ünïcödé pässwörd');
  });

  it('accepts long passwords up to 1,024 bytes, never truncating, and refuses more', () => {
    const long = 'a quiet river '.repeat(80).slice(0, maxPasswordBytes);
    expect(accept(long)).toBe(long);
    expect(() => accept(`${long}x`)).toThrow(expect.objectContaining({ code: 'password_too_long' }));
  });

  it('has no composition rules: all lower-case words are fine', () => {
    expect(accept('purple monkey dishwasher')).toBe('purple monkey dishwasher');
  });

  it('refuses common, repeated, sequential and context-specific passwords', () => {
    for (const weak of [
      'passwordpassword',
      'aaaaaaaaaaaaaaaa',
      'abcabcabcabcabcabc',
      '123456789012345',
      'abcdefghijklmnop',
      'qwertyuiopasdfgh',
      'ada@example.com!!',
      'acme-acme-2026!',
      // From the shipped list of common passwords: not a simple pattern, but well known.
      '1qaz2wsx3edc4rfv',
      'QazWsxEdcRfvTgb',
    ]) {
      expect(() => accept(weak), weak).toThrow(expect.objectContaining({ code: 'password_too_common' }));
    }
  });

  it('normalises Unicode so the same password typed differently matches', () => {
    const composed = accept('caf\u00e9 au lait, bien s\u00fbr');
    const decomposed = accept('cafe\u0301 au lait, bien su\u0302r');
    expect(composed).toBe(decomposed);
  });
});
