import { createHash, randomBytes } from 'node:crypto';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { decryptBuffer, encryptBuffer } from '../../crypto/stream-aead.ts';
import type { AnyKysely, Database } from '../../db/database.ts';
import { latestMigrationName, type Migration } from '../../db/migrator.ts';
import type { Clock } from '../../platform/clock.ts';
import { isAppError } from '../../platform/errors.ts';
import { newTimeOrderedId } from '../../platform/ids.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import { backupErrors } from './backup.errors.ts';
import {
  insertRows,
  listTablesInLoadOrder,
  readControlRows,
  readTableShapes,
  resetIdentitySequences,
} from './backup.repository.ts';
import {
  type BackupLocation,
  backupCompression,
  backupFormat,
  backupKeys,
  type ControlSnapshotManifest,
  controlFileKeyAad,
  controlSnapshotAad,
  readAll,
  readManifest,
} from './backup-format.ts';

/**
 * Control-plane tables a snapshot leaves out: migration bookkeeping (a recovery migrates the empty
 * database itself), leases (held by processes that are gone), the master-key check (the
 * recovered database gets its own, from the master key supplied to the recovery) and API restore
 * jobs (work in progress, like leases: a recovered database must not start restores queued before).
 */
const notBackedUp = new Set(['_migrations', 'leases', 'key_check', 'restore_jobs']);
const isControlTableBackedUp = (table: string) => !notBackedUp.has(table);

export interface ControlSnapshotResult {
  snapshotId: string;
  takenAt: Date;
  rowCount: number;
  storedIn: string[];
  failures: Array<{ location: string; message: string }>;
}

/**
 * Snapshots the control plane into every location: one REPEATABLE READ read of every table, JSON
 * lines compressed with zstd and sealed with a fresh random file key, which is wrapped by the master
 * key and kept in the manifest. The control plane is small (tenants, wrapped keys, staff, indexes),
 * so it is sealed in memory.
 */
export async function snapshotControlPlane(deps: {
  database: Database;
  keys: TenantKeyService;
  locations: readonly BackupLocation[];
  controlMigrations: readonly Migration[];
  clock: Clock;
}): Promise<ControlSnapshotResult> {
  const snapshotId = newTimeOrderedId(deps.clock.now().getTime());
  const read = await deps.database.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute(async (trx) => {
      const tables: Array<{ name: string; rows: number }> = [];
      const lines: string[] = [];
      for (const name of await listTablesInLoadOrder(trx, 'control', isControlTableBackedUp)) {
        const rows = await readControlRows(trx, name);
        tables.push({ name, rows: rows.length });
        for (const row of rows) lines.push(`{"table":${JSON.stringify(name)},"row":${row}}\n`);
      }
      return { tables, plaintext: Buffer.from(lines.join(''), 'utf8'), takenAt: deps.clock.now() };
    });
  const fileKey = randomBytes(32);
  const wrapped = await deps.keys.wrapWithMasterKey(fileKey, controlFileKeyAad(snapshotId));
  const sealed = encryptBuffer(fileKey, zstdCompressSync(read.plaintext), {
    aad: controlSnapshotAad(snapshotId),
  });
  fileKey.fill(0);
  const manifest: ControlSnapshotManifest = {
    format: backupFormat,
    kind: 'control',
    snapshotId,
    takenAt: read.takenAt.toISOString(),
    schemaVersion: latestMigrationName(deps.controlMigrations) ?? '',
    compression: backupCompression,
    tables: read.tables,
    wrappedKey: { kekId: wrapped.kekId, ciphertext: wrapped.ciphertext.toString('base64') },
    sealedBytes: sealed.length,
    sealedSha256: createHash('sha256').update(sealed).digest('hex'),
    createdAt: deps.clock.now().toISOString(),
  };
  const result: ControlSnapshotResult = {
    snapshotId,
    takenAt: read.takenAt,
    rowCount: read.tables.reduce((sum, t) => sum + t.rows, 0),
    storedIn: [],
    failures: [],
  };
  for (const location of deps.locations) {
    try {
      await location.store.put(backupKeys.controlSnapshot(snapshotId), sealed);
      await location.store.put(
        backupKeys.controlSnapshotManifest(snapshotId),
        Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`),
        { contentType: 'application/json' },
      );
      result.storedIn.push(location.name);
    } catch (error) {
      result.failures.push({ location: location.name, message: (error as Error).message });
    }
  }
  return result;
}

/** The control-plane snapshot manifests of a location, newest first (unreadable ones reported). */
export async function listControlSnapshots(
  location: BackupLocation,
): Promise<{ manifests: ControlSnapshotManifest[]; unreadable: string[] }> {
  const manifests: ControlSnapshotManifest[] = [];
  const unreadable: string[] = [];
  for await (const info of location.store.list(backupKeys.controlSnapshotsPrefix)) {
    if (!info.key.endsWith('.json')) continue;
    const manifest = await readManifest<ControlSnapshotManifest>(location.store, info.key, 'control').catch(
      () => undefined,
    );
    if (manifest && backupKeys.controlSnapshotManifest(manifest.snapshotId) === info.key)
      manifests.push(manifest);
    else unreadable.push(info.key);
  }
  manifests.sort((a, b) => b.takenAt.localeCompare(a.takenAt));
  return { manifests, unreadable };
}

/**
 * Reads and opens a control-plane snapshot: checksum against the manifest, the file key unwrapped by
 * the master key (a wrong master key fails here, `master_key_mismatch`, before anything is written),
 * then decryption and decompression. Returns the rows by table, in load order.
 */
export async function openControlSnapshot(
  keys: TenantKeyService,
  location: BackupLocation,
  manifest: ControlSnapshotManifest,
): Promise<Array<{ table: string; rows: unknown[] }>> {
  const fileKeyName = backupKeys.controlSnapshot(manifest.snapshotId);
  const fileKey = await keys.unwrapWithMasterKey(
    { kekId: manifest.wrappedKey.kekId, ciphertext: Buffer.from(manifest.wrappedKey.ciphertext, 'base64') },
    controlFileKeyAad(manifest.snapshotId),
  );
  let plaintext: Buffer;
  try {
    const sealed = await readAll(await location.store.get(fileKeyName));
    if (
      sealed.length !== manifest.sealedBytes ||
      createHash('sha256').update(sealed).digest('hex') !== manifest.sealedSha256
    )
      throw new Error('checksum does not match the manifest');
    plaintext = zstdDecompressSync(
      decryptBuffer(fileKey, sealed, { aad: controlSnapshotAad(manifest.snapshotId) }),
    );
  } catch (error) {
    throw backupErrors.corrupt(
      location.name,
      fileKeyName,
      isAppError(error) ? 'decryption failed (tampered or truncated)' : (error as Error).message,
    );
  } finally {
    fileKey.fill(0);
  }
  const byTable = new Map(manifest.tables.map((t) => [t.name, [] as unknown[]]));
  for (const line of plaintext.toString('utf8').split('\n')) {
    if (!line) continue;
    const { table, row } = JSON.parse(line) as { table: string; row: unknown };
    const rows = byTable.get(table);
    if (!rows) throw backupErrors.corrupt(location.name, fileKeyName, `unexpected table ${table}`);
    rows.push(row);
  }
  for (const t of manifest.tables) {
    if (byTable.get(t.name)!.length !== t.rows)
      throw backupErrors.corrupt(location.name, fileKeyName, `${t.name} does not hold ${t.rows} rows`);
  }
  return manifest.tables.map((t) => ({ table: t.name, rows: byTable.get(t.name)! }));
}

/** Loads opened control-plane rows into the (migrated, empty) control schema, inside `trx`. */
export async function loadControlPlane(
  trx: AnyKysely,
  tables: Array<{ table: string; rows: unknown[] }>,
): Promise<void> {
  for (const { table, rows } of tables) {
    for (let i = 0; i < rows.length; i += 2_000)
      await insertRows(trx, 'control', table, rows.slice(i, i + 2_000));
  }
  const shapes = await readTableShapes(trx, 'control');
  const loaded = new Set(tables.map((t) => t.table));
  await resetIdentitySequences(trx, 'control', new Map([...shapes].filter(([table]) => loaded.has(table))));
}
