import type { AuditEntry } from '../../src/modules/audit/audit-chain.ts';

/** An entry of the system acting in `tenantId`'s chain (null: the platform's), every other field empty. */
export function systemAuditEntry(tenantId: string | null, fields: Partial<AuditEntry> = {}): AuditEntry {
  return {
    at: new Date(),
    tenantId,
    actorKind: 'system',
    actorId: null,
    apiKeyId: null,
    grantId: null,
    action: 'test.event',
    resourceType: null,
    resourceId: null,
    outcome: 'allow',
    statusCode: null,
    errorCode: null,
    requestId: null,
    ip: null,
    userAgent: null,
    changes: null,
    ...fields,
  };
}
