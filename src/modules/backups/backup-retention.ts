import type { Clock } from '../../platform/clock.ts';
import { type BackupLocation, backupKeys, readManifest, type SnapshotManifest } from './backup-format.ts';
import { listControlSnapshots } from './control-plane-backup.ts';
import { listHeldObjects } from './object-copies.ts';

export interface RetentionSummary {
  location: string;
  snapshotsDeleted: number;
  segmentsDeleted: number;
  objectsDeleted: number;
  controlSnapshotsDeleted: number;
  problems: Array<{ key: string; problem: string }>;
}

/**
 * Deletes what no restore inside the window can need, per location and tenant: snapshots older than
 * the newest one taken at or before the window's start (that one is the base for restoring to the
 * start), and the journal segments that only those older snapshots needed (numbered at or below the
 * oldest kept snapshot's journal position). Segments are deleted oldest first and a manifest before
 * its file, so an interrupted run never leaves a gap in the window or a manifest without its file.
 *
 * Attachment copies go when the attachment store purged the version (`findPurged`): it does so only
 * once the version was retired longer ago than the window, so at every instant a restore can still
 * reach the version was already retired, and a restore records such a version as purged instead of
 * needing its file. Current versions' files are never deleted here.
 */
export async function pruneBackups(deps: {
  locations: readonly BackupLocation[];
  clock: Clock;
  restoreWindowMs: number;
  /** Which of a tenant's object keys its attachment store has purged; undefined when the tenant is gone. */
  findPurged?: (tenantId: string, objectKeys: string[]) => Promise<Set<string> | undefined>;
}): Promise<RetentionSummary[]> {
  const windowStart = deps.clock.now().getTime() - deps.restoreWindowMs;
  const summaries: RetentionSummary[] = [];
  for (const location of deps.locations) {
    const summary: RetentionSummary = {
      location: location.name,
      snapshotsDeleted: 0,
      segmentsDeleted: 0,
      objectsDeleted: 0,
      controlSnapshotsDeleted: 0,
      problems: [],
    };
    try {
      const tenants = new Set<string>();
      for await (const info of location.store.list('tenants/')) tenants.add(info.key.split('/')[1]!);
      for (const tenantId of tenants) {
        await pruneTenant(location, tenantId, windowStart, summary);
        if (deps.findPurged) await pruneObjects(location, tenantId, deps.findPurged, summary);
      }
      await pruneControlSnapshots(location, summary);
    } catch (error) {
      summary.problems.push({ key: '', problem: `location unreadable: ${(error as Error).message}` });
    }
    summaries.push(summary);
  }
  return summaries;
}

async function pruneTenant(
  location: BackupLocation,
  tenantId: string,
  windowStart: number,
  summary: RetentionSummary,
): Promise<void> {
  const snapshots: SnapshotManifest[] = [];
  for await (const info of location.store.list(backupKeys.snapshotsPrefix(tenantId))) {
    if (!info.key.endsWith('.json')) continue;
    const manifest = await readManifest<SnapshotManifest>(location.store, info.key, 'snapshot').catch(
      () => undefined,
    );
    // Never delete around a manifest we cannot read: verify reports it, a person decides.
    if (!manifest) {
      summary.problems.push({
        key: info.key,
        problem: 'not a valid manifest; this tenant was left as it is',
      });
      return;
    }
    snapshots.push(manifest);
  }
  snapshots.sort((a, b) => a.takenAt.localeCompare(b.takenAt));
  const base = snapshots.filter((s) => new Date(s.takenAt).getTime() <= windowStart).at(-1);
  if (!base) return;
  const expired = snapshots.slice(0, snapshots.indexOf(base));
  const segments: number[] = [];
  for await (const info of location.store.list(backupKeys.segmentsPrefix(tenantId))) {
    const match = /\/(\d{12})\.seg$/.exec(info.key);
    if (match) segments.push(Number(match[1]));
  }
  segments.sort((a, b) => a - b);
  for (const segmentNo of segments) {
    if (segmentNo > base.segmentPosition) break;
    await location.store.delete(backupKeys.segmentManifest(tenantId, segmentNo));
    await location.store.delete(backupKeys.segment(tenantId, segmentNo));
    summary.segmentsDeleted++;
  }
  for (const snapshot of expired) {
    await location.store.delete(backupKeys.snapshotManifest(tenantId, snapshot.snapshotId));
    await location.store.delete(backupKeys.snapshot(tenantId, snapshot.snapshotId));
    summary.snapshotsDeleted++;
  }
}

const objectPruneBatch = 500;

/** Deletes the copies of the tenant's purged attachment versions, manifest first, then the file. */
async function pruneObjects(
  location: BackupLocation,
  tenantId: string,
  findPurged: NonNullable<Parameters<typeof pruneBackups>[0]['findPurged']>,
  summary: RetentionSummary,
): Promise<void> {
  const held = [...(await listHeldObjects(location, tenantId))];
  for (let i = 0; i < held.length; i += objectPruneBatch) {
    const purged = await findPurged(tenantId, held.slice(i, i + objectPruneBatch));
    // A deleted tenant: its copies are shredded with its key, and left for verify to report.
    if (!purged) return;
    for (const objectKey of purged) {
      await location.store.delete(backupKeys.objectManifest(tenantId, objectKey));
      await location.store.delete(backupKeys.object(tenantId, objectKey));
      summary.objectsDeleted++;
    }
  }
}

/**
 * Control-plane snapshots kept per location: the newest (what disaster recovery loads) and one
 * before it, in case the newest is damaged. Older ones go: they hold wrapped keys of tenants deleted
 * since, which must not outlive the deletion longer than needed (crypto-shredding).
 */
const controlSnapshotsKept = 2;

async function pruneControlSnapshots(location: BackupLocation, summary: RetentionSummary): Promise<void> {
  const { manifests } = await listControlSnapshots(location);
  for (const manifest of manifests.slice(controlSnapshotsKept)) {
    await location.store.delete(backupKeys.controlSnapshotManifest(manifest.snapshotId));
    await location.store.delete(backupKeys.controlSnapshot(manifest.snapshotId));
    summary.controlSnapshotsDeleted++;
  }
}
