import { describe, expect, it } from 'vitest';
import {
  type AuditEntry,
  canonicalAuditEntry,
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

  it('lists every field, keys in sorted order', () => {
    const json = JSON.parse(canonicalAuditEntry(entry).split('\n')[1]!) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(Object.keys(json).sort());
    expect(Object.keys(json).sort()).toEqual([...Object.keys(entry)].sort());
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
