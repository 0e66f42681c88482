import type { Clock } from '../../platform/clock.ts';
import { type BackupLocation, backupKeys, readManifest, type SnapshotManifest } from './backup-format.ts';

export interface RetentionSummary {
  location: string;
  snapshotsDeleted: number;
  segmentsDeleted: number;
  problems: Array<{ key: string; problem: string }>;
}

/**
 * Deletes what no restore inside the window can need, per location and tenant: snapshots older than
 * the newest one taken at or before the window's start (that one is the base for restoring to the
 * start), and the journal segments that only those older snapshots needed (numbered at or below the
 * oldest kept snapshot's journal position). Segments are deleted oldest first and a manifest before
 * its file, so an interrupted run never leaves a gap in the window or a manifest without its file.
 */
export async function pruneBackups(deps: {
  locations: readonly BackupLocation[];
  clock: Clock;
  restoreWindowMs: number;
}): Promise<RetentionSummary[]> {
  const windowStart = deps.clock.now().getTime() - deps.restoreWindowMs;
  const summaries: RetentionSummary[] = [];
  for (const location of deps.locations) {
    const summary: RetentionSummary = {
      location: location.name,
      snapshotsDeleted: 0,
      segmentsDeleted: 0,
      problems: [],
    };
    try {
      const tenants = new Set<string>();
      for await (const info of location.store.list('tenants/')) tenants.add(info.key.split('/')[1]!);
      for (const tenantId of tenants) await pruneTenant(location, tenantId, windowStart, summary);
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
