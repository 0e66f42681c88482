import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decryptField,
  encryptField,
  type FieldContext,
  isEncryptedField,
  readFieldKeyVersion,
} from './field.ts';

const decryptionFailed = expect.objectContaining({ code: 'decryption_failed', kind: 'invalid' });

const keys = new Map<number, Buffer>([
  [1, randomBytes(32)],
  [2, randomBytes(32)],
]);
const currentKey = { version: 2, bytes: keys.get(2)! };
const lookupKey = (version: number): Uint8Array | undefined => keys.get(version);

const context: FieldContext = {
  tenantId: '5b0c3c1e-8f2a-4d8e-9a57-3f1c2b6d7e90',
  table: 'patients',
  column: 'diagnosis',
  rowId: 'row-1',
};

describe('encryptField / decryptField', () => {
  it('round-trips any unicode string in any context', () => {
    const part = fc.string({ maxLength: 12 });
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.record({ tenantId: part, table: part, column: part, rowId: part }),
        (plaintext, anyContext) => {
          const value = encryptField(currentKey, plaintext, anyContext);
          expect(decryptField(lookupKey, value, anyContext)).toBe(plaintext);
        },
      ),
    );
  });

  it('produces enc:v1:<keyVersion>:<base64> with a fresh nonce each time', () => {
    const first = encryptField(currentKey, 'type 2 diabetes', context);
    const second = encryptField(currentKey, 'type 2 diabetes', context);
    expect(first).toMatch(/^enc:v1:2:[A-Za-z0-9+/]+={0,2}$/);
    expect(first).not.toBe(second);
    // nonce(12) + 15 bytes of UTF-8 + tag(16)
    expect(Buffer.from(first.split(':')[3]!, 'base64').length).toBe(12 + 15 + 16);
  });

  it('decrypts values under an older key version that is still available', () => {
    const value = encryptField({ version: 1, bytes: keys.get(1)! }, 'old', context);
    expect(readFieldKeyVersion(value)).toBe(1);
    expect(decryptField(lookupKey, value, context)).toBe('old');
  });

  it('fails for another tenant, table, column or row', () => {
    const value = encryptField(currentKey, 'secret', context);
    for (const change of [
      { tenantId: 'other' },
      { table: 'other' },
      { column: 'other' },
      { rowId: 'row-2' },
    ]) {
      expect(() => decryptField(lookupKey, value, { ...context, ...change })).toThrow(decryptionFailed);
    }
  });

  it('binds the context parts unambiguously (no separator collisions)', () => {
    const value = encryptField(currentKey, 'secret', { ...context, table: 'a:b', column: 'c' });
    expect(() => decryptField(lookupKey, value, { ...context, table: 'a', column: 'b:c' })).toThrow(
      decryptionFailed,
    );
  });

  it('fails when values are swapped between rows', () => {
    const rowA = { ...context, rowId: 'row-a' };
    const rowB = { ...context, rowId: 'row-b' };
    const valueA = encryptField(currentKey, 'alice', rowA);
    const valueB = encryptField(currentKey, 'bob', rowB);
    expect(() => decryptField(lookupKey, valueB, rowA)).toThrow(decryptionFailed);
    expect(() => decryptField(lookupKey, valueA, rowB)).toThrow(decryptionFailed);
  });

  it('fails under the wrong key for the version', () => {
    const value = encryptField(currentKey, 'secret', context);
    expect(() => decryptField(() => randomBytes(32), value, context)).toThrow(decryptionFailed);
  });

  it('fails when the version in the envelope is changed, even to one with the same key bytes', () => {
    const value = encryptField(currentKey, 'secret', context);
    const relabelled = value.replace(/^enc:v1:2:/, 'enc:v1:3:');
    const sameBytesForEveryVersion = () => currentKey.bytes;
    expect(() => decryptField(sameBytesForEveryVersion, relabelled, context)).toThrow(decryptionFailed);
  });

  it('throws unknown_key_version when the lookup has no key for the version', () => {
    const value = encryptField({ version: 7, bytes: randomBytes(32) }, 'secret', context);
    const looked: number[] = [];
    const lookup = (version: number) => {
      looked.push(version);
      return undefined;
    };
    expect(() => decryptField(lookup, value, context)).toThrow(
      expect.objectContaining({ code: 'unknown_key_version', kind: 'invalid', details: { keyVersion: 7 } }),
    );
    expect(looked).toEqual([7]);
  });

  it('fails when any base64 character is changed', () => {
    const value = encryptField(currentKey, 'secret value', context);
    const payloadStart = value.lastIndexOf(':') + 1;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    fc.assert(
      fc.property(
        fc.integer({ min: payloadStart, max: value.length - 1 }),
        fc.constantFrom(...alphabet),
        (index, replacement) => {
          fc.pre(value[index] !== replacement && value[index] !== '=');
          const tampered = value.slice(0, index) + replacement + value.slice(index + 1);
          expect(() => decryptField(lookupKey, tampered, context)).toThrow(decryptionFailed);
        },
      ),
    );
  });

  it('rejects non-canonical base64 that would decode to the same bytes', () => {
    // 'secret' → 34 sealed bytes → base64 ends in '==', and the last data character carries 4 spare
    // bits that a lenient decoder ignores; flipping one spells the same bytes differently.
    const value = encryptField(currentKey, 'secret', context);
    expect(value.endsWith('==')).toBe(true);
    const lastDataIndex = value.length - 3;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const spareBitsSet = alphabet[alphabet.indexOf(value[lastDataIndex]!) ^ 0b01]!;
    const nonCanonical = value.slice(0, lastDataIndex) + spareBitsSet + value.slice(lastDataIndex + 1);
    expect(Buffer.from(nonCanonical.split(':')[3]!, 'base64')).toEqual(
      Buffer.from(value.split(':')[3]!, 'base64'),
    );
    expect(isEncryptedField(nonCanonical)).toBe(false);
    expect(() => decryptField(lookupKey, nonCanonical, context)).toThrow(decryptionFailed);
  });

  it('fails with decryption_failed on malformed envelopes', () => {
    const valid = encryptField(currentKey, 'secret', context);
    const payload = valid.split(':')[3]!;
    const malformed = [
      '',
      'secret',
      'enc:v1:2:',
      `enc:v2:2:${payload}`,
      `enc:v1:02:${payload}`,
      `enc:v1:-2:${payload}`,
      `enc:v1:x:${payload}`,
      `enc:v1:2:${payload}:extra`,
      `enc:v1:2:${payload.replace(/=+$/, '')}`,
      'enc:v1:2:AAAA',
      ` ${valid}`,
    ];
    for (const value of malformed) {
      expect(() => decryptField(lookupKey, value, context)).toThrow(decryptionFailed);
    }
  });

  it('rejects key versions that are not non-negative integers, and keys that are not 32 bytes', () => {
    expect(() => encryptField({ version: -1, bytes: randomBytes(32) }, 'x', context)).toThrow(/version/);
    expect(() => encryptField({ version: 1.5, bytes: randomBytes(32) }, 'x', context)).toThrow(/version/);
    expect(() => encryptField({ version: 1, bytes: randomBytes(16) }, 'x', context)).toThrow(/32 bytes/);
  });
});

describe('isEncryptedField / readFieldKeyVersion', () => {
  it('recognises envelopes and nothing else', () => {
    const value = encryptField(currentKey, 'secret', context);
    expect(isEncryptedField(value)).toBe(true);
    for (const other of ['secret', 'enc:v1:2:!!', 'enc:v1::AAAA', 42, null, undefined, { value }]) {
      expect(isEncryptedField(other)).toBe(false);
    }
  });

  it('reads the key version, and rejects malformed values', () => {
    expect(readFieldKeyVersion(encryptField({ version: 0, bytes: randomBytes(32) }, 'x', context))).toBe(0);
    expect(readFieldKeyVersion(encryptField({ version: 123456, bytes: randomBytes(32) }, 'x', context))).toBe(
      123456,
    );
    expect(() => readFieldKeyVersion('plain text')).toThrow(decryptionFailed);
  });
});
