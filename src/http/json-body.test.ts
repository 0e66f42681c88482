import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findDuplicateKey } from './json-body.ts';

describe('findDuplicateKey', () => {
  it('finds a key repeated in the same object, at any depth', () => {
    expect(findDuplicateKey('{"a":1,"a":2}')).toBe('a');
    expect(findDuplicateKey('{"x":{"b":1,"c":{"d":[1,{"e":1,"e":1}]}}}')).toBe('e');
    expect(findDuplicateKey('[{"a":1},{"b":2,"c":3,"b":4}]')).toBe('b');
    expect(findDuplicateKey('{"a":1,"b":2,"c":3,"a":4}')).toBe('a');
  });

  it('compares keys decoded, not as spelled', () => {
    expect(findDuplicateKey('{"a":1,"\\u0061":2}')).toBe('a');
    expect(findDuplicateKey('{"q\\"":1,"q\\u0022":2}')).toBe('q"');
  });

  it('accepts equal keys in different objects and key-like text in values', () => {
    expect(findDuplicateKey('{"a":{"a":1},"b":[{"a":1},{"a":2}]}')).toBeUndefined();
    expect(findDuplicateKey('{"a":"\\",\\"a\\":","b":"a"}')).toBeUndefined();
    expect(findDuplicateKey('{"a\\\\":1,"a":2}')).toBeUndefined();
    expect(findDuplicateKey('["a","a",{"a":1}]')).toBeUndefined();
    expect(findDuplicateKey('"a"')).toBeUndefined();
    expect(findDuplicateKey('{}')).toBeUndefined();
  });

  it('handles 10,000 levels of nesting without recursion', () => {
    const deep = `${'{"d":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    expect(findDuplicateKey(deep)).toBeUndefined();
    const deepDuplicate = `${'[{"d":1,'.repeat(5_000)}"d":2${'}]'.repeat(5_000)}`;
    expect(findDuplicateKey(deepDuplicate)).toBe('d');
  });

  it('agrees with JSON.parse on any value serialised without duplicates', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(findDuplicateKey(JSON.stringify(value))).toBeUndefined();
      }),
    );
  });

  it('finds a duplicate spliced into any object', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.jsonValue(), { minKeys: 1 }),
        fc.jsonValue(),
        (obj, extra) => {
          const text = JSON.stringify(obj);
          const key = Object.keys(obj)[0]!;
          const spliced = `${text.slice(0, -1)},${JSON.stringify(key)}:${JSON.stringify(extra)}}`;
          expect(findDuplicateKey(spliced)).toBe(key);
        },
      ),
    );
  });
});
