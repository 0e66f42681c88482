import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createZstdCompress } from 'node:zlib';
import { createEncryptStream } from '../../crypto/stream-aead.ts';
import type { Database } from '../../db/database.ts';
import { newLeaseHolder, withLease } from '../../db/leases.ts';
import type { WithTenant } from '../../db/with-tenant.ts';
import type { Clock } from '../../platform/clock.ts';
import { newTimeOrderedId } from '../../platform/ids.ts';
import type { ObjectStore } from '../../ports/object-store.port.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import type { TenantRepository } from '../tenants/tenant.repository.ts';
import { backupErrors } from './backup.errors.ts';
import {
  findNewestSnapshot,
  findSchemaVersion,
  listLiveObjectVersions,
  listTablesInLoadOrder,
  readSnapshotPosition,
  recordSnapshot,
  streamTableRows,
} from './backup.repository.ts';
import {
  type BackupLocation,
  backupCompression,
  backupFormat,
  backupKeys,
  createDigestStream,
  type SnapshotManifest,
  snapshotAad,
} from './backup-format.ts';
import { copyObjectsToLocation, emptyObjectCopySummary, listHeldObjects } from './object-copies.ts';

export interface SnapshotResult {
  tenantId: string;
  snapshotId: string;
  takenAt: Date;
  rowCount: number;
  sealedBytes: number;
  storedIn: string[];
  /** Attachment objects copied to the locations by this snapshot (those they did not hold yet). */
  objectsCopied: number;
  /** Objects the snapshot's rows name that the attachment object store does not have. */
  objectsMissing: string[];
  failures: Array<{ location: string; message: string }>;
}

const fetchBatchRows = 5_000;
const leaseName = 'backup-snapshot';
const leaseTtlMs = 60_000;

/**
 * Per-tenant snapshots: every journaled table read in one REPEATABLE READ transaction, streamed row by
 * row through zstd and the streaming AEAD into a temporary file (ciphertext only; memory holds one
 * fetch batch), then copied to every location, each copy followed by its manifest. Before that, the
 * attachment objects the snapshot's rows name that a location does not hold yet are copied there (as
 * they are, sealed): a location holding a snapshot holds every file a restore from it needs.
 */
export class SnapshotService {
  readonly #database: Database;
  readonly #tenants: TenantRepository;
  readonly #withTenant: WithTenant;
  readonly #keys: TenantKeyService;
  readonly #locations: readonly BackupLocation[];
  readonly #clock: Clock;
  readonly #objects: ObjectStore;

  constructor(deps: {
    database: Database;
    tenants: TenantRepository;
    withTenant: WithTenant;
    keys: TenantKeyService;
    locations: readonly BackupLocation[];
    clock: Clock;
    /** The attachment object store the snapshot's files are copied from. */
    objects: ObjectStore;
  }) {
    this.#database = deps.database;
    this.#tenants = deps.tenants;
    this.#withTenant = deps.withTenant;
    this.#keys = deps.keys;
    this.#locations = deps.locations;
    this.#clock = deps.clock;
    this.#objects = deps.objects;
  }

  /**
   * Snapshots every live tenant (or only those whose newest snapshot is older than `dueAfterMs`),
   * under a lease so that, scheduled on every node, it runs once at a time.
   */
  async snapshotAll(
    options: { dueAfterMs?: number; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<SnapshotResult[]> {
    const holder = newLeaseHolder();
    const outcome = await withLease(
      this.#database.control,
      leaseName,
      holder,
      leaseTtlMs,
      async (_lease, isLost) => {
        const tenantIds = await this.#tenants.listLiveIds();
        const results: SnapshotResult[] = [];
        let done = 0;
        for (const tenantId of tenantIds) {
          if (isLost()) break;
          if (options.dueAfterMs !== undefined && !(await this.#isDue(tenantId, options.dueAfterMs))) {
            options.onProgress?.(++done, tenantIds.length);
            continue;
          }
          results.push(await this.snapshotTenant(tenantId));
          options.onProgress?.(++done, tenantIds.length);
        }
        return results;
      },
    );
    if ('conflict' in outcome) throw backupErrors.inProgress('snapshots', outcome.conflict.holder);
    return outcome.value;
  }

  async #isDue(tenantId: string, dueAfterMs: number): Promise<boolean> {
    const newest = await this.#withTenant(tenantId, (scope) => findNewestSnapshot(scope), { readOnly: true });
    return !newest || this.#clock.now().getTime() - newest.takenAt.getTime() >= dueAfterMs;
  }

  async snapshotTenant(tenantId: string): Promise<SnapshotResult> {
    const key = await this.#keys.getDataKey(tenantId);
    const snapshotId = newTimeOrderedId(this.#clock.now().getTime());
    const workDir = await mkdtemp(join(tmpdir(), 'strongroom-snapshot-'));
    const sealedPath = join(workDir, 'snapshot.snap');
    try {
      const digest = createDigestStream();
      const taken = await this.#withTenant(
        tenantId,
        async (scope) => {
          const position = await readSnapshotPosition(scope);
          const schemaVersion = await findSchemaVersion(scope.trx, scope.schema);
          const tables = (await listTablesInLoadOrder(scope.trx, scope.schema)).map((name) => ({
            name,
            rows: 0,
          }));
          async function* lines(): AsyncGenerator<Buffer> {
            for (const table of tables) {
              // Each line is `{"table":<name>,"row":<row>}`; the row is already JSON text from
              // Postgres: spliced in, not parsed and re-encoded, one join per batch.
              const open = `{"table":${JSON.stringify(table.name)},"row":`;
              const between = `}\n${open}`;
              for await (const batch of streamTableRows(scope, table.name, fetchBatchRows)) {
                table.rows += batch.length;
                yield Buffer.from(`${open}${batch.join(between)}}\n`, 'utf8');
              }
            }
          }
          await pipeline(
            Readable.from(lines()),
            createZstdCompress(),
            createEncryptStream(key.bytes, { aad: snapshotAad(tenantId, snapshotId) }),
            digest,
            createWriteStream(sealedPath, { mode: 0o600 }),
          );
          // Read in the same snapshot as the rows: exactly the files they name.
          const objects = (await listLiveObjectVersions(scope.trx, scope.schema)).map((v) => ({
            objectKey: v.objectKey,
            keyVersion: v.keyVersion,
          }));
          return { ...position, schemaVersion, tables, objects };
        },
        { readOnly: true, isolation: 'repeatable read' },
      );
      const sealed = digest.digest();
      const manifest: SnapshotManifest = {
        format: backupFormat,
        kind: 'snapshot',
        tenantId,
        snapshotId,
        takenAt: taken.takenAt.toISOString(),
        txSnapshot: taken.txSnapshot,
        segmentPosition: taken.segmentPosition,
        schemaVersion: taken.schemaVersion,
        keyVersion: key.version,
        compression: backupCompression,
        tables: taken.tables,
        sealedBytes: sealed.sizeBytes,
        sealedSha256: sealed.sha256,
        createdAt: this.#clock.now().toISOString(),
      };
      const storedIn: string[] = [];
      const failures: SnapshotResult['failures'] = [];
      const copies = emptyObjectCopySummary();
      for (const location of this.#locations) {
        try {
          await copyObjectsToLocation(
            { objects: this.#objects, clock: this.#clock },
            location,
            tenantId,
            taken.objects,
            copies,
            await listHeldObjects(location, tenantId),
          );
          const stored = await location.store.put(
            backupKeys.snapshot(tenantId, snapshotId),
            createReadStream(sealedPath),
          );
          if (stored.sha256 !== sealed.sha256) throw new Error('the stored copy has a different checksum');
          await location.store.put(
            backupKeys.snapshotManifest(tenantId, snapshotId),
            Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`),
            { contentType: 'application/json' },
          );
          storedIn.push(location.name);
        } catch (error) {
          failures.push({ location: location.name, message: (error as Error).message });
        }
      }
      const rowCount = taken.tables.reduce((sum, t) => sum + t.rows, 0);
      if (storedIn.length > 0) {
        await this.#withTenant(tenantId, (scope) =>
          recordSnapshot(scope, { snapshotId, takenAt: taken.takenAt, storedIn, rowCount }),
        );
      }
      return {
        tenantId,
        snapshotId,
        takenAt: taken.takenAt,
        rowCount,
        sealedBytes: sealed.sizeBytes,
        storedIn,
        objectsCopied: copies.copied,
        objectsMissing: copies.missing,
        failures,
      };
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }
}
