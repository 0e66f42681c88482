import type { AnyKysely, Database } from '../../db/database.ts';
import { newLeaseHolder, withLease } from '../../db/leases.ts';
import { latestMigrationName, type Migration } from '../../db/migrator.ts';
import { tenantSchemaName } from '../../db/tenant-schema.ts';
import { isAppError } from '../../platform/errors.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import type { TenantRepository } from '../tenants/tenant.repository.ts';
import { backupErrors } from './backup.errors.ts';
import { listControlTenantIds, listTenantSchemas } from './backup.repository.ts';
import type { BackupLocation, ControlSnapshotManifest } from './backup-format.ts';
import { listControlSnapshots, loadControlPlane, openControlSnapshot } from './control-plane-backup.ts';
import type { RestoreService } from './restore.service.ts';
import type { SnapshotService } from './snapshot.service.ts';

export interface RecoveryResult {
  location: string;
  controlSnapshotId: string;
  controlSnapshotTakenAt: string;
  /** Whether this run loaded the control plane (false: it finished a run that had). */
  controlPlaneLoaded: boolean;
  tenants: Array<{
    tenantId: string;
    slug: string | null;
    outcome: 'restored' | 'already_restored' | 'failed';
    rowsLoaded?: number;
    entriesReplayed?: number;
    objectsRestored?: number;
    /** The newest change recovered (the snapshot's time when no journal followed it). */
    message?: string;
  }>;
}

/**
 * `restore --all --from <location>`: rebuilds the control plane and every tenant onto an empty
 * database from one location alone (the master key supplied through the usual configuration).
 *
 * 1. The newest control-plane snapshot of the location that opens (its file key is wrapped by the
 *    master key: a wrong key stops here, before anything is written) is loaded in one transaction.
 * 2. Each tenant that was not deleted is recovered in its own transaction (RestoreService.recover):
 *    newest snapshot plus every journal segment after it, its files written back from the location.
 * 3. Each recovered tenant is snapshotted, so its backups continue from the recovered state.
 *
 * A crash leaves whole steps: a re-run against the same database finds the control plane of the
 * same snapshot, skips the tenants already recovered and finishes the others. A database holding
 * anything else is refused.
 */
export async function recoverAll(
  deps: {
    database: Database;
    keys: TenantKeyService;
    tenants: TenantRepository;
    restores: RestoreService;
    snapshots: SnapshotService;
    locations: readonly BackupLocation[];
    controlMigrations: readonly Migration[];
  },
  request: { from?: string; onProgress?: (done: number, total: number, label: string) => void },
): Promise<RecoveryResult> {
  const names = deps.locations.map((l) => l.name);
  if (request.from === undefined) throw backupErrors.fromRequired(names);
  const location = deps.locations.find((l) => l.name === request.from);
  if (!location) throw backupErrors.unknownLocation(request.from, names);

  const outcome = await withLease(deps.database.control, 'disaster-recovery', newLeaseHolder(), 60_000, () =>
    recoverFrom(deps, location, request.onProgress),
  );
  if ('conflict' in outcome) throw backupErrors.inProgress('disaster recovery', outcome.conflict.holder);
  return outcome.value;
}

/**
 * True when this database is what a recovery loads into: no tenant in the control plane and no tenant
 * schema. A refused run must then leave no trace (not even its audit entry), or the platform chain
 * it starts would be where the recovered one must go.
 */
export function isRecoveryTarget(database: Database): Promise<boolean> {
  return database.db.transaction().execute(isEmptyTarget);
}

async function isEmptyTarget(trx: AnyKysely): Promise<boolean> {
  return (await listControlTenantIds(trx)).length === 0 && (await listTenantSchemas(trx)).size === 0;
}

async function recoverFrom(
  deps: Parameters<typeof recoverAll>[0],
  location: BackupLocation,
  onProgress: ((done: number, total: number, label: string) => void) | undefined,
): Promise<RecoveryResult> {
  const { manifest, tables } = await openNewestControlSnapshot(deps, location);
  const tenantRows = (tables.find((t) => t.table === 'tenants')?.rows ?? []) as Array<{
    id: string;
    slug: string | null;
    status: string;
  }>;
  const controlPlaneLoaded = await deps.database.db.transaction().execute(async (trx) => {
    if (await isEmptyTarget(trx)) {
      await loadControlPlane(trx, tables);
      return true;
    }
    const present = await listControlTenantIds(trx);
    // A re-run after a crash: the same tenants as the snapshot, and nothing else.
    const known = new Set(tenantRows.map((t) => t.id));
    if (present.length !== known.size || present.some((id) => !known.has(id)))
      throw backupErrors.targetNotEmpty(present.length);
    return false;
  });

  const result: RecoveryResult = {
    location: location.name,
    controlSnapshotId: manifest.snapshotId,
    controlSnapshotTakenAt: manifest.takenAt,
    controlPlaneLoaded,
    tenants: [],
  };
  const live = tenantRows.filter((t) => t.status !== 'deleted');
  const schemas = await deps.database.db.transaction().execute((trx) => listTenantSchemas(trx));
  let done = 0;
  onProgress?.(0, live.length, 'tenants');
  for (const row of live) {
    const entry: RecoveryResult['tenants'][number] = {
      tenantId: row.id,
      slug: row.slug,
      outcome: 'restored',
    };
    result.tenants.push(entry);
    if (schemas.has(tenantSchemaName(row.id))) {
      entry.outcome = 'already_restored';
    } else {
      try {
        const tenant = await deps.tenants.findById(row.id);
        if (!tenant) throw new Error('the tenant row is missing from the recovered control plane');
        const restored = await deps.restores.recover(location, tenant);
        entry.rowsLoaded = restored.rowsLoaded;
        entry.entriesReplayed = restored.entriesReplayed;
        entry.objectsRestored = restored.objectsRestored;
        // The recovered tenant's backups continue from here.
        await deps.snapshots.snapshotTenant(row.id);
      } catch (error) {
        // One tenant's unusable backup must not keep every other tenant down: report and go on.
        entry.outcome = 'failed';
        entry.message = isAppError(error) ? `[${error.code}] ${error.message}` : (error as Error).message;
      }
    }
    onProgress?.(++done, live.length, row.slug ?? row.id);
  }
  return result;
}

/**
 * The newest control-plane snapshot of the location that opens. A corrupt one is passed over for the
 * one before it; a wrong master key is not (every snapshot would fail the same way).
 */
async function openNewestControlSnapshot(
  deps: Parameters<typeof recoverAll>[0],
  location: BackupLocation,
): Promise<{ manifest: ControlSnapshotManifest; tables: Awaited<ReturnType<typeof openControlSnapshot>> }> {
  const { manifests } = await listControlSnapshots(location);
  const expected = latestMigrationName(deps.controlMigrations);
  for (const manifest of manifests) {
    if (manifest.schemaVersion !== expected)
      throw backupErrors.controlVersionMismatch(manifest.schemaVersion, expected);
    try {
      return { manifest, tables: await openControlSnapshot(deps.keys, location, manifest) };
    } catch (error) {
      if (isAppError(error) && error.code === backupErrors.corrupt.code) continue;
      throw error;
    }
  }
  throw backupErrors.noControlSnapshot(location.name);
}
