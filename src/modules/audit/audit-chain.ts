import { hash } from 'node:crypto';

/** Who acted: a user (session), a user's API key, platform staff, nobody yet (login), or the system. */
export type ActorKind = 'user' | 'api_key' | 'staff' | 'anonymous' | 'system';
export type AuditOutcome = 'allow' | 'deny' | 'error';

/** One audit entry as recorded, before it is chained. Change summaries hold field names only. */
export interface AuditEntry {
  at: Date;
  /** The tenant the chain belongs to (the platform chain: the tenant an event concerns, or null). */
  tenantId: string | null;
  actorKind: ActorKind;
  actorId: string | null;
  apiKeyId: string | null;
  /** The support-access grant the actor worked under; null until grants exist. */
  grantId: string | null;
  action: string;
  resourceType: string | null;
  resourceId: string | null;
  outcome: AuditOutcome;
  statusCode: number | null;
  errorCode: string | null;
  requestId: string | null;
  ip: string | null;
  userAgent: string | null;
  /** Names of the fields a write changed, never their values. */
  changes: string[] | null;
}

export interface ChainedAuditEntry extends AuditEntry {
  position: number;
  prevHash: string;
  hash: string;
}

/** The chain's first entry links to 32 zero bytes. */
export const genesisHash = '0'.repeat(64);

/** An entry with its time already as ISO 8601 text: what the canonical form is made of. */
export type CanonicalAuditFields = Omit<AuditEntry, 'at'> & { at: string };

/**
 * The canonical form of an entry: a version tag and JSON with every field present (null when absent)
 * and keys in sorted (UTF-16 code unit) order, so the same entry always gives the same bytes. The position is not part
 * of it: order is bound by each entry hashing its predecessor, and positions are checked by counting.
 */
export function canonicalAuditEntry(entry: AuditEntry): string {
  return canonicalAuditFields({ ...entry, at: entry.at.toISOString() });
}

/**
 * The same bytes as `JSON.stringify` of the fields with sorted keys (a property test holds it to
 * that), written out by hand: verify makes one per entry, and building an object for
 * `JSON.stringify` was a third of its time.
 */
export function canonicalAuditFields(f: CanonicalAuditFields, isPlain = false): string {
  // `isPlain`: the caller knows no string holds anything JSON escapes, so none is looked at.
  const q = isPlain ? plainString : jsonString;
  return (
    `strongroom/audit/v1\n{"action":${q(f.action)},"actorId":${q(f.actorId)}` +
    `,"actorKind":${q(f.actorKind)},"apiKeyId":${q(f.apiKeyId)},"at":${q(f.at)}` +
    `,"changes":${f.changes === null ? 'null' : `[${f.changes.map(q).join(',')}]`}` +
    `,"errorCode":${q(f.errorCode)},"grantId":${q(f.grantId)},"ip":${q(f.ip)}` +
    `,"outcome":${q(f.outcome)},"requestId":${q(f.requestId)}` +
    `,"resourceId":${q(f.resourceId)},"resourceType":${q(f.resourceType)}` +
    `,"statusCode":${f.statusCode === null ? 'null' : JSON.stringify(f.statusCode)}` +
    `,"tenantId":${q(f.tenantId)},"userAgent":${q(f.userAgent)}}`
  );
}

/** What JSON.stringify would escape in a string: quote, backslash, control characters, lone surrogates. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what JSON escapes.
const needsEscape = /["\\\u0000-\u001f\ud800-\udfff]/;

function plainString(value: string | null): string {
  return value === null ? 'null' : `"${value}"`;
}

function jsonString(value: string | null): string {
  if (value === null) return 'null';
  return needsEscape.test(value) ? JSON.stringify(value) : `"${value}"`;
}

/** Reused by `hashAuditEntry` (synchronous, so never shared between two calls). */
let scratch = Buffer.allocUnsafe(4096);

/** hash = SHA-256(prev_hash (32 bytes) ‖ canonical form (UTF-8)), hex. */
export function hashAuditEntry(prevHash: string, entry: AuditEntry): string {
  return hashCanonical(prevHash, canonicalAuditEntry(entry));
}

/** `hashAuditEntry` of a canonical form already made: one buffer, one one-shot digest. */
export function hashCanonical(prevHash: string, canonical: string): string {
  const size = 32 + Buffer.byteLength(canonical, 'utf8');
  if (size > scratch.length) scratch = Buffer.allocUnsafe(size * 2);
  // Stored hashes are 64 hex digits (a check constraint); anything else is hashed as Buffer.from
  // reads it, never with bytes left over from the previous call.
  if (prevHash.length !== 64 || scratch.write(prevHash, 0, 32, 'hex') !== 32)
    return hash(
      'sha256',
      Buffer.concat([Buffer.from(prevHash, 'hex'), Buffer.from(canonical, 'utf8')]),
      'hex',
    );
  scratch.write(canonical, 32, 'utf8');
  return hash('sha256', scratch.subarray(0, size), 'hex');
}

/**
 * For each stored entry, 1 if its stored hash is SHA-256(its stored prev_hash ‖ its canonical
 * form), else 0. Each entry is checked on its own (links are the walk's business), so pages can be
 * checked anywhere, in any order: verify spreads them over worker threads (audit-hash.worker.ts).
 */
export function checkEntryHashes(
  entries: ReadonlyArray<CanonicalAuditFields & { prevHash: string; hash: string }>,
): Uint8Array {
  const consistent = new Uint8Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    consistent[i] = hashCanonical(entry.prevHash, canonicalAuditFields(entry)) === entry.hash ? 1 : 0;
  }
  return consistent;
}

/** Chains `entries` after the head (`position`, `hash`); returns them with positions and hashes. */
export function chainAuditEntries(
  head: { position: number; hash: string },
  entries: readonly AuditEntry[],
): ChainedAuditEntry[] {
  let { position, hash } = head;
  return entries.map((entry) => {
    const prevHash = hash;
    hash = hashAuditEntry(prevHash, entry);
    position += 1;
    return { ...entry, position, prevHash, hash };
  });
}
