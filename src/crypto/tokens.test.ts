import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { constantTimeEqual, generateToken, hashToken, hashTokenHex } from './tokens.ts';

describe('generateToken', () => {
  it('is the prefix, an underscore and 256 bits of base64url by default', () => {
    const token = generateToken('srk');
    expect(token).toMatch(/^srk_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(token.slice('srk_'.length), 'base64url').length).toBe(32);
  });

  it('honours a custom size of at least 128 bits', () => {
    const token = generateToken('inv', 16);
    expect(Buffer.from(token.slice('inv_'.length), 'base64url').length).toBe(16);
    expect(() => generateToken('inv', 15)).toThrow(/128 bits/);
    expect(() => generateToken('inv', 20.5)).toThrow(/random bytes/);
  });

  it('never repeats', () => {
    const tokens = new Set(Array.from({ length: 1000 }, () => generateToken('sess')));
    expect(tokens.size).toBe(1000);
  });

  it('accepts only lowercase alphanumeric prefixes, so the first underscore ends the prefix', () => {
    for (const prefix of ['', 'Srk', 'sr_k', '1abc', 'sr-k']) {
      expect(() => generateToken(prefix)).toThrow(/prefix/);
    }
  });
});

describe('hashToken / hashTokenHex', () => {
  it('is SHA-256 of the UTF-8 token (FIPS 180-2 "abc" vector)', () => {
    const expected = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    expect(hashTokenHex('abc')).toBe(expected);
    expect(hashToken('abc')).toEqual(Buffer.from(expected, 'hex'));
  });

  it('differs between tokens and is stable for one token', () => {
    const token = generateToken('srk');
    expect(hashTokenHex(token)).toBe(hashTokenHex(token));
    expect(hashTokenHex(token)).not.toBe(hashTokenHex(generateToken('srk')));
  });
});

describe('constantTimeEqual', () => {
  it('is true exactly when the strings are equal', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        expect(constantTimeEqual(a, b)).toBe(a === b);
        expect(constantTimeEqual(a, a)).toBe(true);
      }),
    );
  });

  it('is true exactly when the bytes are equal, whatever the lengths', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (a, b) => {
        expect(constantTimeEqual(a, b)).toBe(Buffer.from(a).equals(Buffer.from(b)));
        expect(constantTimeEqual(a, Uint8Array.from(a))).toBe(true);
      }),
    );
  });

  it('handles different lengths and prefixes without throwing', () => {
    expect(constantTimeEqual('abc', 'abcd')).toBe(false);
    expect(constantTimeEqual('', 'a')).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });

  it('compares a string with bytes as its UTF-8 encoding', () => {
    expect(constantTimeEqual('zürich', Buffer.from('zürich', 'utf8'))).toBe(true);
    expect(constantTimeEqual('zürich', Buffer.from('zürich', 'latin1'))).toBe(false);
  });
});
