import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  aesGcmNonceSizeBytes,
  aesGcmTagSizeBytes,
  encodeAad,
  openAesGcm,
  openAesGcmWithNonce,
  sealAesGcm,
  sealAesGcmWithNonce,
} from './aead.ts';

const decryptionFailed = expect.objectContaining({ code: 'decryption_failed', kind: 'invalid' });

const key = randomBytes(32);
const aad = encodeAad(['tenant-1', 'key-version-3']);

describe('sealAesGcm / openAesGcm', () => {
  it('round-trips any plaintext and aad', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2048 }),
        fc.uint8Array({ maxLength: 256 }),
        (plaintext, anyAad) => {
          const sealed = sealAesGcm(key, plaintext, anyAad);
          expect(sealed.length).toBe(aesGcmNonceSizeBytes + plaintext.length + aesGcmTagSizeBytes);
          expect(openAesGcm(key, sealed, anyAad)).toEqual(Buffer.from(plaintext));
        },
      ),
    );
  });

  it('uses a fresh nonce each time, so equal plaintexts give different ciphertexts', () => {
    const plaintext = Buffer.from('same data key');
    const first = sealAesGcm(key, plaintext, aad);
    const second = sealAesGcm(key, plaintext, aad);
    expect(first.subarray(0, aesGcmNonceSizeBytes)).not.toEqual(second.subarray(0, aesGcmNonceSizeBytes));
    expect(first).not.toEqual(second);
  });

  it('fails with decryption_failed under the wrong key', () => {
    const sealed = sealAesGcm(key, Buffer.from('secret'), aad);
    expect(() => openAesGcm(randomBytes(32), sealed, aad)).toThrow(decryptionFailed);
  });

  it('fails with decryption_failed under the wrong aad (another tenant or key version)', () => {
    const sealed = sealAesGcm(key, Buffer.from('secret'), aad);
    expect(() => openAesGcm(key, sealed, encodeAad(['tenant-2', 'key-version-3']))).toThrow(decryptionFailed);
    expect(() => openAesGcm(key, sealed, encodeAad(['tenant-1', 'key-version-4']))).toThrow(decryptionFailed);
  });

  it('fails with decryption_failed when any single bit is flipped', () => {
    const sealed = sealAesGcm(key, randomBytes(40), aad);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: sealed.length * 8 - 1 }), (bit) => {
        const tampered = Buffer.from(sealed);
        tampered[bit >> 3]! ^= 1 << (bit & 7);
        expect(() => openAesGcm(key, tampered, aad)).toThrow(decryptionFailed);
      }),
    );
  });

  it('fails with decryption_failed on input too short for a nonce and a tag, or truncated', () => {
    const sealed = sealAesGcm(key, Buffer.from('secret'), aad);
    for (let length = 0; length < sealed.length; length++) {
      expect(() => openAesGcm(key, sealed.subarray(0, length), aad)).toThrow(decryptionFailed);
    }
  });

  it('rejects keys that are not 32 bytes as a programming error, not a user error', () => {
    for (const badKey of [randomBytes(16), randomBytes(24), randomBytes(33), new Uint8Array(0)]) {
      expect(() => sealAesGcm(badKey, Buffer.from('x'), aad)).toThrow(/32 bytes/);
      expect(() => openAesGcm(badKey, randomBytes(40), aad)).toThrow(/32 bytes/);
    }
  });
});

describe('sealAesGcmWithNonce / openAesGcmWithNonce', () => {
  it('round-trips and binds the nonce', () => {
    const nonce = randomBytes(12);
    const sealed = sealAesGcmWithNonce(key, nonce, Buffer.from('chunk'), aad);
    expect(sealed.length).toBe(5 + aesGcmTagSizeBytes);
    expect(openAesGcmWithNonce(key, nonce, sealed, aad).toString()).toBe('chunk');
    expect(() => openAesGcmWithNonce(key, randomBytes(12), sealed, aad)).toThrow(decryptionFailed);
  });

  it('rejects nonces that are not 12 bytes', () => {
    expect(() => sealAesGcmWithNonce(key, randomBytes(16), Buffer.from('x'), aad)).toThrow(/nonce/);
  });
});

describe('encodeAad', () => {
  it('encodes different part lists differently, even when their joined text is equal', () => {
    expect(encodeAad(['a:b', 'c'])).not.toEqual(encodeAad(['a', 'b:c']));
    expect(encodeAad(['ab', ''])).not.toEqual(encodeAad(['a', 'b']));
    expect(encodeAad([''])).not.toEqual(encodeAad([]));
  });

  it('is injective over arbitrary part lists', () => {
    const parts = fc.array(fc.string({ maxLength: 6 }), { maxLength: 4 });
    fc.assert(
      fc.property(parts, parts, (left, right) => {
        const isSameList = JSON.stringify(left) === JSON.stringify(right);
        expect(encodeAad(left).equals(encodeAad(right))).toBe(isSameList);
      }),
    );
  });

  it('treats a string part and its UTF-8 bytes alike', () => {
    expect(encodeAad(['tenant', Buffer.from('ü', 'utf8')])).toEqual(encodeAad(['tenant', 'ü']));
  });
});
