import { createHmac, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deriveKey } from './hkdf.ts';

/** RFC 5869 §2.2–2.3 written out with HMAC, as an independent reference for `deriveKey`. */
function deriveKeyByTheRfc(
  inputKey: Uint8Array,
  salt: Uint8Array,
  info: string,
  lengthBytes: number,
): Buffer {
  const pseudoRandomKey = createHmac('sha256', salt.length > 0 ? salt : Buffer.alloc(32))
    .update(inputKey)
    .digest();
  const blocks: Buffer[] = [];
  let previous = Buffer.alloc(0);
  for (let counter = 1; blocks.length * 32 < lengthBytes; counter++) {
    previous = createHmac('sha256', pseudoRandomKey)
      .update(Buffer.concat([previous, Buffer.from(info, 'utf8'), Buffer.from([counter])]))
      .digest();
    blocks.push(previous);
  }
  return Buffer.concat(blocks).subarray(0, lengthBytes);
}

describe('deriveKey', () => {
  it('matches RFC 5869 HKDF-SHA-256', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 100 }),
        (inputKey, salt, info, lengthBytes) => {
          expect(deriveKey(inputKey, salt, info, lengthBytes)).toEqual(
            deriveKeyByTheRfc(inputKey, salt, info, lengthBytes),
          );
        },
      ),
    );
  });

  it('derives 32 bytes by default, deterministically', () => {
    const dataKey = randomBytes(32);
    const salt = randomBytes(32);
    const derived = deriveKey(dataKey, salt, 'strongroom/test/v1');
    expect(derived.length).toBe(32);
    expect(deriveKey(dataKey, salt, 'strongroom/test/v1')).toEqual(derived);
  });

  it('gives independent keys for different info, salt or input key', () => {
    const dataKey = randomBytes(32);
    const salt = randomBytes(32);
    const derived = deriveKey(dataKey, salt, 'strongroom/stream/v1');
    expect(deriveKey(dataKey, salt, 'strongroom/field/v1')).not.toEqual(derived);
    expect(deriveKey(dataKey, randomBytes(32), 'strongroom/stream/v1')).not.toEqual(derived);
    expect(deriveKey(randomBytes(32), salt, 'strongroom/stream/v1')).not.toEqual(derived);
  });

  it('rejects an empty input key, an empty info and impossible lengths', () => {
    expect(() => deriveKey(new Uint8Array(0), randomBytes(32), 'x')).toThrow(/input key/);
    expect(() => deriveKey(randomBytes(32), randomBytes(32), '')).toThrow(/info/);
    expect(() => deriveKey(randomBytes(32), randomBytes(32), 'x', 0)).toThrow(/length/);
    expect(() => deriveKey(randomBytes(32), randomBytes(32), 'x', 255 * 32 + 1)).toThrow(/length/);
  });
});
