import { describe, expect, it } from 'vitest';
import { isoFromTimestamptz } from './audit-stored-row.ts';

describe('timestamptz text as the ISO 8601 an entry was hashed with', () => {
  it('reads UTC and other offsets, with and without a fraction, to the millisecond', () => {
    expect(isoFromTimestamptz('2026-11-23 10:00:00.123+00')).toBe('2026-11-23T10:00:00.123Z');
    expect(isoFromTimestamptz('2026-11-23 10:00:00+00')).toBe('2026-11-23T10:00:00.000Z');
    expect(isoFromTimestamptz('2026-11-23 10:00:00.1+00')).toBe('2026-11-23T10:00:00.100Z');
    expect(isoFromTimestamptz('2026-11-23 10:00:00.123456+00')).toBe('2026-11-23T10:00:00.123Z');
    expect(isoFromTimestamptz('2026-11-23 15:30:00.5+05:30')).toBe('2026-11-23T10:00:00.500Z');
    expect(isoFromTimestamptz('2026-11-23 06:30:00-03:30')).toBe('2026-11-23T10:00:00.000Z');
    expect(isoFromTimestamptz('1883-11-18 11:50:02-04:09:58')).toBe('1883-11-18T16:00:00.000Z');
    expect(isoFromTimestamptz('0050-01-01 00:00:00+00')).toBe('0050-01-01T00:00:00.000Z');
  });

  it('reads nothing it is not sure of (the page is then checked from plain columns)', () => {
    for (const text of [
      'infinity',
      '0050-01-01 00:00:00+01',
      '2026-11-23 10:00:00+00 BC',
      '2026-11-23T10:00:00Z',
      '2026-1x-23 10:00:00.123+00',
    ])
      expect(isoFromTimestamptz(text), text).toBeUndefined();
  });
});
