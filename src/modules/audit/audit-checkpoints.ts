import type { Database } from '../../db/database.ts';
import { newLeaseHolder, withLease } from '../../db/leases.ts';
import type { TenantRepository } from '../tenants/tenant.repository.ts';
import type { AuditService } from './audit.service.ts';

export interface CheckpointRunSummary {
  /** Chains looked at: every live tenant's, and the platform's. */
  chains: number;
  sealed: number;
  /** Entries deleted past their tenant's retention (whole sealed segments). */
  pruned: number;
  failures: Array<{ tenantId: string | null; message: string }>;
}

const leaseName = 'audit-checkpoints';
const leaseTtlMs = 60_000;

/**
 * Seals every chain whose checkpoint is due (N entries or the interval since the last one) and
 * prunes tenant chains past their retention, under
 * one lease so that nodes scheduling it together still run it once at a time. Undefined when
 * another node holds the lease (it is doing the same work).
 */
export async function runAuditCheckpoints(deps: {
  database: Database;
  tenants: TenantRepository;
  audit: AuditService;
}): Promise<CheckpointRunSummary | undefined> {
  const holder = newLeaseHolder();
  const outcome = await withLease(
    deps.database.control,
    leaseName,
    holder,
    leaseTtlMs,
    async (_lease, isLost) => {
      const summary: CheckpointRunSummary = { chains: 0, sealed: 0, pruned: 0, failures: [] };
      const chains: Array<string | null> = [null, ...(await deps.tenants.listLiveIds())];
      for (const tenantId of chains) {
        if (isLost()) break;
        try {
          // What a node that died before its next flush left pending goes into the chain first.
          if (tenantId !== null) await deps.audit.sealPending(tenantId);
          if (await deps.audit.checkpoint(tenantId)) summary.sealed++;
          if (tenantId !== null) summary.pruned += (await deps.audit.prune(tenantId))?.deleted ?? 0;
        } catch (error) {
          summary.failures.push({ tenantId, message: (error as Error).message });
        }
        summary.chains++;
      }
      return summary;
    },
  );
  return 'conflict' in outcome ? undefined : outcome.value;
}
