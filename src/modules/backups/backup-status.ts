import type { WithTenant } from '../../db/with-tenant.ts';
import type { Clock } from '../../platform/clock.ts';
import type { TenantRepository } from '../tenants/tenant.repository.ts';
import { findNewestSnapshot, readLocationPositions } from './backup.repository.ts';
import type { BackupLocation } from './backup-format.ts';

export interface TenantBackupStatus {
  tenantId: string;
  slug: string;
  newestSnapshot: { snapshotId: string; takenAt: string; storedIn: string[] } | null;
  locations: Array<{
    location: string;
    lastSegmentNo: number | null;
    /** The newest change this location holds. */
    lastShippedChangeAt: string | null;
    pendingEntries: number;
    /**
     * How much committed work this location would lose right now: the age of the oldest change it
     * does not hold yet (0 when it holds everything).
     */
    rpoMs: number;
  }>;
}

/** Per tenant and location: the last shipped position, what is still pending, and the RPO now. */
export async function readBackupStatus(deps: {
  tenants: TenantRepository;
  withTenant: WithTenant;
  locations: readonly BackupLocation[];
  clock: Clock;
}): Promise<TenantBackupStatus[]> {
  const names = deps.locations.map((l) => l.name);
  const statuses: TenantBackupStatus[] = [];
  for (const tenantId of await deps.tenants.listLiveIds()) {
    const tenant = await deps.tenants.findById(tenantId);
    const { positions, snapshot } = await deps.withTenant(
      tenantId,
      async (scope) => ({
        positions: await readLocationPositions(scope, names),
        snapshot: await findNewestSnapshot(scope),
      }),
      { readOnly: true },
    );
    const now = deps.clock.now().getTime();
    statuses.push({
      tenantId,
      slug: tenant?.slug ?? '',
      newestSnapshot: snapshot
        ? {
            snapshotId: snapshot.snapshotId,
            takenAt: snapshot.takenAt.toISOString(),
            storedIn: snapshot.storedIn,
          }
        : null,
      locations: positions.map((p) => ({
        location: p.location,
        lastSegmentNo: p.lastSegmentNo,
        lastShippedChangeAt: p.lastShippedAt?.toISOString() ?? null,
        pendingEntries: p.pendingEntries,
        rpoMs: p.oldestPendingAt ? Math.max(0, now - p.oldestPendingAt.getTime()) : 0,
      })),
    });
  }
  return statuses;
}
