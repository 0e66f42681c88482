import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AuditEntry,
  canonicalAuditEntry,
  canonicalAuditFields,
  chainAuditEntries,
  genesisHash,
  hashAuditEntry,
} from './audit-chain.ts';

const entry: AuditEntry = {
  at: new Date('2026-11-23T10:00:00.123Z'),
  tenantId: '00000000-0000-4000-8000-000000000001',
  actorKind: 'user',
  actorId: 'u1',
  apiKeyId: null,
  grantId: null,
  action: 'records.read',
  resourceType: 'record',
  resourceId: 'r1',
  outcome: 'allow',
  statusCode: 200,
  errorCode: null,
  requestId: 'req',
  ip: '127.0.0.1',
  userAgent: 'ua',
  changes: ['name'],
};

describe('audit chain', () => {
  it('has one canonical form whatever the property order', () => {
    const shuffled = Object.fromEntries(Object.entries(entry).reverse()) as unknown as AuditEntry;
    expect(canonicalAuditEntry(shuffled)).toBe(canonicalAuditEntry(entry));
    expect(canonicalAuditEntry(entry)).toContain('"action":"records.read","actorId":"u1"');
  });

  it('gives the same bytes without looking at values the caller knows need no escaping', () => {
    expect(canonicalAuditFields({ ...entry, at: entry.at.toISOString() }, true)).toBe(
      canonicalAuditEntry(entry),
    );
  });

  it('lists every field, keys in sorted order', () => {
    const json = JSON.parse(canonicalAuditEntry(entry).split('\n')[1]!) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(Object.keys(json).sort());
    expect(Object.keys(json).sort()).toEqual([...Object.keys(entry)].sort());
  });

  it('writes exactly the bytes of JSON.stringify with sorted keys, whatever the strings hold', () => {
    // Any UTF-16 code unit (lone surrogates too), and often the characters JSON escapes.
    const unit = fc.oneof(
      fc.constantFrom('"', '\\', '\u0000', '\n', '\u001f', '\u007f', '\ud800', '\udfff', '😀', 'é', '\u2028'),
      fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)),
    );
    const string = (minLength: number, maxLength: number) => fc.string({ unit, minLength, maxLength });
    const text = fc.option(string(0, 40), { nil: null });
    const arbitraryEntry = fc.record({
      at: fc.date({ min: new Date(0), max: new Date(Date.UTC(9999, 0)), noInvalidDate: true }),
      tenantId: text,
      actorKind: fc.constantFrom('user', 'api_key', 'staff', 'anonymous', 'system'),
      actorId: text,
      apiKeyId: text,
      grantId: text,
      action: string(1, 20),
      resourceType: text,
      resourceId: text,
      outcome: fc.constantFrom('allow', 'deny', 'error'),
      statusCode: fc.option(fc.integer({ min: -1, max: 999 }), { nil: null }),
      errorCode: text,
      requestId: text,
      ip: text,
      userAgent: text,
      changes: fc.option(fc.array(string(0, 10), { maxLength: 4 }), {
        nil: null,
      }),
    }) as fc.Arbitrary<AuditEntry>;
    fc.assert(
      fc.property(arbitraryEntry, (e) => {
        const fields = { ...e, at: e.at.toISOString() } as Record<string, unknown>;
        const sorted = Object.fromEntries(
          Object.keys(fields)
            .sort()
            .map((k) => [k, fields[k]]),
        );
        const reference = `strongroom/audit/v1\n${JSON.stringify(sorted)}`;
        expect(canonicalAuditEntry(e)).toBe(reference);
        const digest = createHash('sha256')
          .update(Buffer.from(genesisHash, 'hex'))
          .update(reference, 'utf8')
          .digest('hex');
        expect(hashAuditEntry(genesisHash, e)).toBe(digest);
      }),
      { numRuns: 500 },
    );
  });

  it('links each entry to its predecessor', () => {
    const [first, second] = chainAuditEntries({ position: 0, hash: genesisHash }, [
      entry,
      { ...entry, action: 'x' },
    ]);
    expect(first).toMatchObject({ position: 1, prevHash: genesisHash });
    expect(second?.prevHash).toBe(first?.hash);
    expect(second?.hash).toBe(hashAuditEntry(first!.hash, { ...entry, action: 'x' }));
    // Any field change, or another predecessor, gives another hash.
    expect(hashAuditEntry(genesisHash, { ...entry, outcome: 'deny' })).not.toBe(first?.hash);
    expect(hashAuditEntry(second!.hash, entry)).not.toBe(first?.hash);
  });
});
