import { defineError } from '../../platform/errors.ts';

export const backupErrors = {
  noLocations: defineError(
    'backup_locations_missing',
    'invalid',
    'Backups need at least two configured locations (STRONGROOM_BACKUP_LOCATIONS).',
  ),
  unknownLocation: defineError(
    'backup_location_unknown',
    'invalid',
    'No backup location has that name.',
    (name: string, known: string[]) => ({
      message: `no backup location is called ${name} (configured: ${known.join(', ')})`,
      details: { location: name, known },
    }),
  ),
  inProgress: defineError(
    'backup_job_in_progress',
    'conflict',
    'The same backup job (shipping, snapshots, or a restore of this tenant) is already running elsewhere.',
    (job: string, holder: string) => ({
      message: `${job} is already running (${holder})`,
      details: { job, holder },
    }),
  ),
  jobNotFound: defineError(
    'restore_job_not_found',
    'not_found',
    'No restore job with that id (for this tenant).',
  ),
  interrupted: defineError(
    'restore_interrupted',
    'unavailable',
    'The node running the restore stopped before it finished. A restore is one transaction: nothing of it was kept. Request it again.',
  ),
  unconfirmed: defineError(
    'restore_unconfirmed',
    'conflict',
    'The tenant was restored in place and its previous data is kept: confirm (drops it) or undo (swaps it back) first.',
    (tenant: string) => ({
      message: `${tenant} was restored in place and its previous data is still kept: run \`strongroom restore confirm --tenant ${tenant}\` or \`strongroom restore undo --tenant ${tenant}\` first`,
      details: { tenant },
    }),
  ),
  nothingKept: defineError(
    'restore_nothing_kept',
    'not_found',
    'The tenant has no data kept from an in-place restore: nothing to confirm or undo.',
    (tenant: string) => ({
      message: `${tenant} has no data kept from an in-place restore`,
      details: { tenant },
    }),
  ),
  keptAtOtherVersion: defineError(
    'restore_kept_version_differs',
    'conflict',
    'The data an in-place restore kept is at another tenant schema version (a migration ran since): it cannot be swapped back; confirm the restore instead.',
    (tenant: string, kept: string, live: string) => ({
      message: `${tenant}'s kept data is at schema version ${kept}, the tenant at ${live}: a migration ran since the in-place restore, so it cannot be undone`,
      details: { tenant, kept, live },
    }),
  ),
  acrossInPlaceRestore: defineError(
    'restore_across_in_place_restore',
    'invalid',
    'The tenant was restored in place between the snapshot and that instant, and no snapshot was taken after the swap yet.',
    (swappedAt: string) => ({
      message: `the tenant was restored in place at ${swappedAt}, and there is no snapshot after that yet: restore to an instant before it, or after its next snapshot`,
      details: { swappedAt },
    }),
  ),
  outsideWindow: defineError(
    'restore_time_outside_window',
    'invalid',
    'The requested restore time is outside the window the backups cover.',
    (at: Date, from: Date | undefined, to: Date) => ({
      message: from
        ? `cannot restore to ${at.toISOString()}: the backups cover ${from.toISOString()} to ${to.toISOString()}`
        : `cannot restore to ${at.toISOString()}: there is no snapshot of this tenant yet (take one with \`strongroom backup snapshot\`)`,
      details: {
        at: at.toISOString(),
        windowStart: from?.toISOString() ?? null,
        windowEnd: to.toISOString(),
      },
    }),
  ),
  corrupt: defineError(
    'backup_corrupt',
    'integrity',
    'A backup file or manifest failed its checksum, decryption or continuity check.',
    (location: string, key: string, reason: string) => ({
      message: `backup file ${key} in ${location} is unusable: ${reason}`,
      details: { location, key, reason },
    }),
  ),
  shredded: defineError(
    'backup_shredded',
    'not_found',
    "The tenant's data key was destroyed (tenant deleted): its backups can no longer be read.",
    (tenantId: string) => ({
      message: `the backups of tenant ${tenantId} are shredded: its data key was destroyed when it was deleted`,
      details: { tenantId },
    }),
  ),
  schemaMismatch: defineError(
    'restore_schema_version_unsupported',
    'unsupported',
    'The backup was written at a tenant schema version this Strongroom does not know (by a newer version); restore it with that version or later.',
    (found: string, expected: string | null) => ({
      message: `the backup is at tenant schema version ${found}, which this Strongroom (at ${expected}) does not know: it was written by a newer version`,
      details: { found, expected },
    }),
  ),
  noControlSnapshot: defineError(
    'backup_control_snapshot_missing',
    'not_found',
    'The backup location holds no readable control-plane snapshot to recover from.',
    (location: string) => ({
      message: `${location} holds no readable control-plane snapshot (the server takes one after each round of tenant snapshots; \`strongroom backup snapshot\` takes one now)`,
      details: { location },
    }),
  ),
  controlVersionMismatch: defineError(
    'restore_control_version_unsupported',
    'unsupported',
    'The control-plane snapshot was taken at another control-plane schema version than this Strongroom has.',
    (found: string, expected: string | null) => ({
      message: `the control-plane snapshot is at version ${found}, this Strongroom is at ${expected}: recover with the Strongroom version that took it`,
      details: { found, expected },
    }),
  ),
  targetNotEmpty: defineError(
    'restore_target_not_empty',
    'conflict',
    'Disaster recovery writes only into an empty database (or finishes one it started from the same snapshot).',
    (tenants: number) => ({
      message: `this database already holds ${tenants} tenants that are not those of the control-plane snapshot: disaster recovery needs an empty database (point DATABASE_URL at a new one)`,
      details: { tenants },
    }),
  ),
  fromRequired: defineError(
    'restore_location_required',
    'invalid',
    'Disaster recovery reads one location, named with --from.',
    (known: string[]) => ({
      message: `name the location to recover from with --from (configured: ${known.join(', ')})`,
      details: { known },
    }),
  ),
};
