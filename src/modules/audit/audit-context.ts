import { AsyncLocalStorage } from 'node:async_hooks';
import type { ActorKind } from './audit-chain.ts';

/**
 * What the audit log needs to know about the request being served. The HTTP layer creates one per
 * request, fills in the actor once authenticated, and runs the route handler inside it, so a write
 * transaction opened anywhere below can append the request's entry in that same transaction.
 */
export interface AuditRequestContext {
  requestId: string;
  ip: string | null;
  userAgent: string | null;
  action: string;
  resourceType: string | null;
  resourceId: string | null;
  /** Field names a write names in its body (never values). */
  changes: string[] | null;
  /** Known once the request authenticated (or, for sign-in, from the tenant slug it names). */
  tenantId: string | null;
  tenantSlug: string | null;
  actor: { kind: ActorKind; id: string | null; apiKeyId: string | null };
  grantId: string | null;
  /** Set once an entry for this request committed with a write; the response hook then adds none. */
  audited: boolean;
  /** Staff routes: the entry goes to the platform chain, naming the tenant in `tenantId` if any. */
  platform: boolean;
  /** The error code the request ended with, if any. */
  errorCode: string | null;
}

const storage = new AsyncLocalStorage<AuditRequestContext>();

export function runWithAuditContext<T>(context: AuditRequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

export function currentAuditContext(): AuditRequestContext | undefined {
  return storage.getStore();
}
