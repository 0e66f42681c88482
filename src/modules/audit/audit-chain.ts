import { createHash } from 'node:crypto';

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

/**
 * The canonical form of an entry: a version tag and JSON with every field present (null when absent)
 * and keys in sorted (UTF-16 code unit) order, so the same entry always gives the same bytes. The position is not part
 * of it: order is bound by each entry hashing its predecessor, and positions are checked by counting.
 */
export function canonicalAuditEntry(entry: AuditEntry): string {
  const fields: Record<string, unknown> = {
    action: entry.action,
    actorId: entry.actorId,
    actorKind: entry.actorKind,
    apiKeyId: entry.apiKeyId,
    at: entry.at.toISOString(),
    changes: entry.changes,
    errorCode: entry.errorCode,
    grantId: entry.grantId,
    ip: entry.ip,
    outcome: entry.outcome,
    requestId: entry.requestId,
    resourceId: entry.resourceId,
    resourceType: entry.resourceType,
    statusCode: entry.statusCode,
    tenantId: entry.tenantId,
    userAgent: entry.userAgent,
  };
  // The literal above lists the keys in sorted order (a test holds it to that), so plain
  // JSON.stringify is already canonical; a key list as replacer would cost a third of verify's time.
  return `strongroom/audit/v1\n${JSON.stringify(fields)}`;
}

/** hash = SHA-256(prev_hash (32 bytes) ‖ canonical form (UTF-8)), hex. */
export function hashAuditEntry(prevHash: string, entry: AuditEntry): string {
  return createHash('sha256')
    .update(Buffer.from(prevHash, 'hex'))
    .update(canonicalAuditEntry(entry), 'utf8')
    .digest('hex');
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
