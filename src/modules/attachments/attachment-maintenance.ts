import type { Database } from '../../db/database.ts';
import { newLeaseHolder, withLease } from '../../db/leases.ts';
import { defineError } from '../../platform/errors.ts';
import type { TenantRepository } from '../tenants/tenant.repository.ts';
import type { AttachmentService } from './attachment.service.ts';

export interface MaintenanceSummary {
  tenants: number;
  purged: number;
  orphansSwept: number;
  /** Remains of uploads a crash cut off mid-stream (the folder store's temp files), removed. */
  incompleteSwept: number;
  /** Record idempotency keys past their 24 h, forgotten. */
  idempotencyKeysPruned: number;
  /** Tenants whose run failed (they are retried next time); the reasons are in `failures`. */
  failures: Array<{ tenantId: string; message: string }>;
}

export const maintenanceErrors = {
  inProgress: defineError(
    'maintenance_in_progress',
    'conflict',
    'Attachment maintenance is already running elsewhere (another node or command); it runs once at a time.',
    (holder: string) => ({
      message: `attachment maintenance is already running (${holder})`,
      details: { holder },
    }),
  ),
};

const leaseName = 'attachment-maintenance';
const leaseTtlMs = 60_000;

/**
 * Sweeps what crashed uploads left in the object store, then purges retired attachment versions
 * past the restore window and sweeps orphans, tenant by tenant
 * (and forgets record idempotency keys past their day, the other per-tenant housekeeping),
 * under one lease: scheduled on every node, it still runs exactly once at a time across them all.
 */
export async function runAttachmentMaintenance(
  deps: {
    database: Database;
    tenants: TenantRepository;
    attachments: AttachmentService;
    records: { pruneIdempotencyKeys(tenantId: string): Promise<number> };
  },
  onProgress?: (done: number, total: number) => void,
): Promise<MaintenanceSummary> {
  const holder = newLeaseHolder();
  const outcome = await withLease(
    deps.database.control,
    leaseName,
    holder,
    leaseTtlMs,
    async (_lease, isLost) => {
      const summary: MaintenanceSummary = {
        tenants: 0,
        purged: 0,
        orphansSwept: 0,
        incompleteSwept: await deps.attachments.sweepIncompleteUploads(),
        idempotencyKeysPruned: 0,
        failures: [],
      };
      const all = await deps.tenants.listLiveIds();
      for (const tenantId of all) {
        if (isLost()) break;
        try {
          const result = await deps.attachments.maintain(tenantId);
          summary.purged += result.purged;
          summary.orphansSwept += result.orphansSwept;
          summary.idempotencyKeysPruned += await deps.records.pruneIdempotencyKeys(tenantId);
        } catch (error) {
          summary.failures.push({ tenantId, message: (error as Error).message });
        }
        summary.tenants++;
        onProgress?.(summary.tenants, all.length);
      }
      return summary;
    },
  );
  if ('conflict' in outcome) throw maintenanceErrors.inProgress(outcome.conflict.holder);
  return outcome.value;
}
