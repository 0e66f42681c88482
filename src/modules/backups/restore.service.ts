import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { createZstdDecompress, zstdDecompressSync } from 'node:zlib';
import type { Kysely } from 'kysely';
import { cryptoErrors } from '../../crypto/crypto.errors.ts';
import { createDecryptStream, createEncryptStream, decryptBuffer } from '../../crypto/stream-aead.ts';
import type { ControlTables } from '../../db/control-tables.ts';
import type { AnyKysely, Database } from '../../db/database.ts';
import { migrationMarkerTable } from '../../db/journal.ts';
import { newLeaseHolder, withLease } from '../../db/leases.ts';
import { latestMigrationName, type Migration } from '../../db/migrator.ts';
import { keptSchemaName, tenantSchemaName } from '../../db/tenant-schema.ts';
import {
  createTenantSchema,
  grantTenantPrivileges,
  migrateTenantSchema,
  renameTenantDataSchema,
  revokeTenantAccess,
} from '../../db/tenant-schemas.ts';
import { pauseTenantWrites } from '../../db/with-tenant.ts';
import type { Clock } from '../../platform/clock.ts';
import { isAppError } from '../../platform/errors.ts';
import { isUuid, newId } from '../../platform/ids.ts';
import { type ObjectStore, objectStoreErrors, scopeObjectStore } from '../../ports/object-store.port.ts';
import { objectAad } from '../attachments/attachment.service.ts';
import { keyErrors } from '../keys/keys.errors.ts';
import type { DataKey, TenantKeyService } from '../keys/tenant-keys.service.ts';
import { tenantErrors } from '../tenants/tenant.errors.ts';
import type { Tenant, TenantRepository } from '../tenants/tenant.repository.ts';
import { assertValidSlug, assertValidTenantName } from '../tenants/tenant-validation.ts';
import { backupErrors } from './backup.errors.ts';
import {
  analyzeTables,
  applyJournalBatch,
  carryBackupBookkeeping,
  clearJournal,
  countRows,
  dropSchema,
  findSchemaVersion,
  inPlaceRestoreMarkerTable,
  insertRows,
  journalInPlaceRestore,
  listLiveObjectVersions,
  type RestoredObjectRow,
  readTableShapes,
  recountUsage,
  resetIdentitySequences,
  schemaExists,
  setJournalTriggers,
  setObjectKeyVersion,
  setObjectPurged,
  setSegmentPosition,
  setUsageTriggers,
} from './backup.repository.ts';
import {
  type BackupLocation,
  backupKeys,
  createDigestStream,
  type JournalEntry,
  type ObjectManifest,
  readAll,
  readManifest,
  type SegmentManifest,
  type SnapshotManifest,
  segmentAad,
  snapshotAad,
} from './backup-format.ts';
import { SealedValueRekeyer } from './sealed-values.ts';

export interface RestoreRequest {
  /** The tenant whose backups are restored: its slug (live tenants) or id. */
  tenant: string;
  at: Date;
  /** Slug of the new tenant the restored data is published as. */
  intoSlug: string;
  intoName?: string;
  /** Restore from this location only; default: the first location that works, in configured order. */
  from?: string;
  onProgress?: (done: number, total: number, label: string) => void;
}

/** Where restored data goes: a new tenant, or (disaster recovery) the same tenant on an empty database. */
type RestoreTarget =
  | { kind: 'new'; slug: string; name: string }
  | { kind: 'recover'; tenant: Tenant }
  /** A drill: into a scratch schema that is inspected, then rolled back (never committed). */
  | { kind: 'scratch'; tenant: Tenant; inspect: (trx: AnyKysely, schema: string) => Promise<unknown> }
  /** In place: into a fresh schema swapped in for the live one, which is kept until confirmed. */
  | { kind: 'in-place'; tenant: Tenant };

/** Carries a scratch restore's inspection out of its transaction, rolling the transaction back. */
class ScratchRolledBack extends Error {
  readonly inspected: unknown;
  constructor(inspected: unknown) {
    super('scratch restore rolled back');
    this.inspected = inspected;
  }
}

export interface RestoreResult {
  tenant: Tenant;
  sourceTenantId: string;
  at: Date;
  location: string;
  snapshotId: string;
  snapshotTakenAt: Date;
  rowsLoaded: number;
  entriesReplayed: number;
  segmentsRead: number;
  /** Attachment files brought back: from the location, and (older backups) from the attachment store. */
  objectsRestored: number;
  objectsFromLiveStore: number;
  /**
   * Of those, files a restore into the tenant itself (in place, recovery) found in the attachment
   * store already, intact (the location's size and SHA-256), and left as they were.
   */
  objectsUnchanged: number;
}

const insertBatchRows = 2_000;
const replayBatchEntries = 500;
const leaseTtlMs = 60_000;
/** How long an in-place swap waits for the tenant's transactions in flight (new ones get 503). */
const pauseWaitMs = 10_000;

/**
 * Point-in-time restore of one tenant into a fresh schema published as a new tenant: the newest
 * snapshot taken at or before T, then the journal entries after it up to T, in one transaction with
 * the new tenant's creation, so a failure (a corrupt file, a wrong key, a crash) leaves nothing.
 * Other tenants are not touched. Runs under a lease per source tenant: two restores of one tenant
 * queue up instead of racing.
 */
export class RestoreService {
  readonly #database: Database;
  readonly #tenants: TenantRepository;
  readonly #keys: TenantKeyService;
  readonly #locations: readonly BackupLocation[];
  readonly #migrations: readonly Migration[];
  readonly #clock: Clock;
  readonly #restoreWindowMs: number;
  readonly #objects: ObjectStore;

  constructor(deps: {
    database: Database;
    tenants: TenantRepository;
    keys: TenantKeyService;
    locations: readonly BackupLocation[];
    migrations: readonly Migration[];
    clock: Clock;
    restoreWindowMs: number;
    /** The attachment object store: a restore copies the files its rows name into the new tenant. */
    objects: ObjectStore;
  }) {
    this.#database = deps.database;
    this.#tenants = deps.tenants;
    this.#keys = deps.keys;
    this.#locations = deps.locations;
    this.#migrations = deps.migrations;
    this.#clock = deps.clock;
    this.#restoreWindowMs = deps.restoreWindowMs;
    this.#objects = deps.objects;
  }

  async restore(request: RestoreRequest): Promise<RestoreResult> {
    const { source, intoName } = await this.#checkNewTenant(request);
    const locations = this.#pickLocations(request.from);
    return this.#underLease(source, request.tenant, () =>
      this.#fromFirstWorking(locations, (location) =>
        this.#restoreFrom(
          location,
          source.id,
          request.at,
          { kind: 'new', slug: request.intoSlug, name: intoName },
          request.onProgress,
        ),
      ),
    );
  }

  /**
   * Restores a live tenant in place: everything a restore does, into a fresh schema, then in the same
   * transaction the tenant is paused (its transactions in flight finish, new ones answer
   * `tenant_restoring`), its backup bookkeeping moves to the new schema, the live schema is renamed
   * to the kept one (`k_…`, no access for the tenant role) and the new one takes its name. A crash
   * anywhere rolls all of it back. The previous data stays until `confirm` (or `undo`).
   */
  async restoreInPlace(request: Omit<RestoreRequest, 'intoSlug' | 'intoName'>): Promise<RestoreResult> {
    const source = await this.#findSource(request.tenant);
    if (source.status === 'deleted') throw tenantErrors.notFound();
    const locations = this.#pickLocations(request.from);
    return this.#underLease(source, request.tenant, async () => {
      if (await this.#hasKept(source.id)) throw backupErrors.unconfirmed(request.tenant);
      return this.#fromFirstWorking(locations, (location) =>
        this.#restoreFrom(
          location,
          source.id,
          request.at,
          { kind: 'in-place', tenant: source },
          request.onProgress,
        ),
      );
    });
  }

  /** Drops the data an in-place restore kept: the restore becomes final. */
  async confirmInPlace(tenant: string): Promise<Tenant> {
    const source = await this.#findLive(tenant);
    return this.#underLease(source, tenant, () =>
      this.#database.db.transaction().execute(async (trx) => {
        const kept = keptSchemaName(source.id);
        if (!(await schemaExists(trx, kept))) throw backupErrors.nothingKept(tenant);
        await dropSchema(trx, kept);
        return source;
      }),
    );
  }

  /**
   * Swaps the kept data back in, paused like the restore, and drops the restored schema: changes
   * made since the restore are discarded (they stay in the backups). The backup bookkeeping moves
   * back with a marker, as in the restore.
   */
  async undoInPlace(tenant: string): Promise<Tenant> {
    const source = await this.#findLive(tenant);
    return this.#underLease(source, tenant, () =>
      this.#database.db.transaction().execute(async (trx) => {
        const kept = keptSchemaName(source.id);
        const live = tenantSchemaName(source.id);
        if (!(await schemaExists(trx, kept))) throw backupErrors.nothingKept(tenant);
        // The fleet migrator migrates live schemas only: a kept one stays at its version.
        const [keptVersion, liveVersion] = [
          await findSchemaVersion(trx, kept),
          await findSchemaVersion(trx, live),
        ];
        if (keptVersion !== liveVersion)
          throw backupErrors.keptAtOtherVersion(tenant, keptVersion, liveVersion);
        await pauseTenantWrites(trx, source.id, pauseWaitMs);
        await carryBackupBookkeeping(trx, live, kept);
        await journalInPlaceRestore(trx, kept, { undone: true });
        await dropSchema(trx, live);
        await renameTenantDataSchema(trx, kept, live);
        await setJournalTriggers(trx, live, true);
        await grantTenantPrivileges(trx, this.#database, source.id);
        return source;
      }),
    );
  }

  async #findLive(idOrSlug: string): Promise<Tenant> {
    const found = await this.#findSource(idOrSlug);
    if (found.status === 'deleted') throw tenantErrors.notFound();
    return found;
  }

  async #hasKept(tenantId: string): Promise<boolean> {
    return this.#database.db.transaction().execute((trx) => schemaExists(trx, keptSchemaName(tenantId)));
  }

  /** One restore (of any kind) of a tenant at a time, across nodes: a second one is refused. */
  async #underLease<T>(source: Tenant, label: string, work: () => Promise<T>): Promise<T> {
    const outcome = await withLease(
      this.#database.control,
      `backup-restore:${source.id}`,
      newLeaseHolder(),
      leaseTtlMs,
      work,
    );
    if ('conflict' in outcome)
      throw backupErrors.inProgress(`a restore of ${label}`, outcome.conflict.holder);
    return outcome.value;
  }

  /** Tries each location in turn until one restores; only a corrupt or unreachable one passes on. */
  async #fromFirstWorking<T>(
    locations: readonly BackupLocation[],
    work: (location: BackupLocation) => Promise<T>,
  ): Promise<T> {
    let lastError: unknown;
    for (const location of locations) {
      try {
        return await work(location);
      } catch (error) {
        // A time outside the window, a shredded key or a taken slug is the same in every location.
        if (!isAppError(error) || error.code !== backupErrors.corrupt.code) throw error;
        lastError = error;
      }
    }
    throw lastError;
  }

  async #findSource(idOrSlug: string): Promise<Tenant> {
    const found = isUuid(idOrSlug)
      ? await this.#tenants.findById(idOrSlug)
      : await this.#tenants.findLiveBySlug(idOrSlug);
    if (!found) throw tenantErrors.notFound();
    return found;
  }

  #pickLocations(from: string | undefined): readonly BackupLocation[] {
    if (this.#locations.length === 0) throw backupErrors.noLocations();
    if (from === undefined) return this.#locations;
    const location = this.#locations.find((l) => l.name === from);
    if (!location)
      throw backupErrors.unknownLocation(
        from,
        this.#locations.map((l) => l.name),
      );
    return [location];
  }

  /**
   * What a restore into a new tenant refuses before reading anything big, for a caller that answers
   * before the restore runs (an API restore job): a bad slug or name, a taken slug, an unknown
   * tenant or location, and a time outside the window of the first location that can be listed
   * (the manifests only). A location that cannot be listed is left to the restore itself.
   */
  async check(request: Omit<RestoreRequest, 'onProgress'>): Promise<Tenant> {
    const { source } = await this.#checkNewTenant(request);
    const now = this.#clock.now();
    for (const location of this.#pickLocations(request.from)) {
      try {
        await this.#snapshotFor(location, source.id, request.at, now);
        break;
      } catch (error) {
        if (!isAppError(error) || error.code !== backupErrors.corrupt.code) throw error;
      }
    }
    return source;
  }

  async #checkNewTenant(request: Pick<RestoreRequest, 'tenant' | 'intoSlug' | 'intoName'>) {
    assertValidSlug(request.intoSlug);
    const intoName = request.intoName ?? `${request.intoSlug} (restored)`;
    assertValidTenantName(intoName);
    const source = await this.#findSource(request.tenant);
    if (await this.#tenants.findLiveBySlug(request.intoSlug)) throw tenantErrors.slugTaken(request.intoSlug);
    return { source, intoName };
  }

  /** The newest snapshot at or before `at` in the location; a time outside its window is refused. */
  async #snapshotFor(
    location: BackupLocation,
    tenantId: string,
    at: Date,
    now: Date,
  ): Promise<SnapshotManifest> {
    const snapshots = await this.#listManifests<SnapshotManifest>(
      location,
      backupKeys.snapshotsPrefix(tenantId),
      'snapshot',
    );
    snapshots.sort((a, b) => a.takenAt.localeCompare(b.takenAt));
    const oldest = snapshots[0] ? new Date(snapshots[0].takenAt) : undefined;
    const windowStart = oldest && new Date(Math.max(oldest.getTime(), now.getTime() - this.#restoreWindowMs));
    const snapshot = snapshots.filter((s) => new Date(s.takenAt) <= at).at(-1);
    if (!windowStart || !snapshot || at > now || at < windowStart) {
      throw backupErrors.outsideWindow(at, windowStart, now);
    }
    return snapshot;
  }

  /**
   * Disaster recovery of one tenant: its newest state in `location` (newest snapshot plus every
   * journal segment after it) into its own schema, with its own id and key, on a database whose
   * control plane was recovered already (its tenant row and wrapped keys are there) and which has no
   * schema for it. One transaction, as a restore: a failure leaves no schema and no files.
   */
  async recover(location: BackupLocation, tenant: Tenant, onProgress?: RestoreRequest['onProgress']) {
    return this.#restoreFrom(location, tenant.id, this.#clock.now(), { kind: 'recover', tenant }, onProgress);
  }

  /**
   * A restore drill of one tenant at `at` from one location into a scratch schema: everything a
   * restore does and checks (files are read and checked against their manifests, not written), then
   * `inspect` looks at the scratch schema and the transaction is rolled back, so the scratch schema,
   * and its role, never exist for anyone else and a crash leaves nothing to clean up.
   */
  async drill<T>(
    location: BackupLocation,
    tenant: Tenant,
    at: Date,
    inspect: (trx: AnyKysely, schema: string) => Promise<T>,
  ): Promise<{ result: RestoreResult; inspected: T }> {
    let inspected: T | undefined;
    const result = await this.#restoreFrom(
      location,
      tenant.id,
      at,
      {
        kind: 'scratch',
        tenant,
        inspect: async (trx, schema) => {
          inspected = await inspect(trx, schema);
        },
      },
      undefined,
    );
    return { result, inspected: inspected as T };
  }

  async #restoreFrom(
    location: BackupLocation,
    tenantId: string,
    at: Date,
    target: RestoreTarget,
    onProgress: RestoreRequest['onProgress'],
  ): Promise<RestoreResult> {
    const now = this.#clock.now();
    const snapshot = await this.#snapshotFor(location, tenantId, at, now);
    const expectedVersion = latestMigrationName(this.#migrations);
    // The schema is built at the snapshot's version, so its rows load as they were taken.
    const snapshotMigrations = this.#migrationsUpTo(snapshot.schemaVersion);
    const segments = await this.#segmentsAfter(location, tenantId, snapshot.segmentPosition, at);
    const key = await this.#dataKey(tenantId, snapshot.keyVersion);
    const sourceKeys = await this.#allDataKeys(tenantId, key);
    const rowsTotal = snapshot.tables.reduce((sum, t) => sum + t.rows, 0);
    const total = rowsTotal + segments.reduce((sum, s) => sum + s.entryCount, 0);
    const progress = (done: number, label: string) => onProgress?.(done, total, label);
    const isRecovery = target.kind === 'recover';
    const isScratch = target.kind === 'scratch';
    const isInPlace = target.kind === 'in-place';

    progress(0, `snapshot of ${snapshot.takenAt} from ${location.name}`);
    // Whose data it becomes (files and sealed values belong to it), and which id names the schema
    // being built: in place, a fresh one that takes the live schema's name at the swap.
    const newTenantId = isRecovery || isInPlace ? tenantId : newId();
    const schemaId = isInPlace ? newId() : newTenantId;
    const schema = tenantSchemaName(schemaId);
    // In place, the schema gets no role of its own: at the swap it becomes the tenant's, with its role.
    const roles = isInPlace
      ? { rolesEnabled: false, isSuperuser: this.#database.isSuperuser }
      : this.#database;
    let entriesReplayed = 0;
    const copied: string[] = [];
    const objectCounts = { restored: 0, fromLiveStore: 0, unchanged: 0 };
    const newObjects = scopeObjectStore(this.#objects, `tenants/${newTenantId}/`);
    const tenant = await this.#database.db
      .transaction()
      .execute(async (trx) => {
        const control = trx.withSchema('control') as unknown as Kysely<ControlTables>;
        let created: Tenant;
        let newKey: DataKey;
        // Recovery keeps the tenant's id and keys, so its sealed values and files open as they are.
        let rekeyer: Pick<SealedValueRekeyer, 'rekeyRow'> = { rekeyRow: (_table, row) => row };
        if (target.kind === 'recover') {
          created = target.tenant;
          newKey = key;
          await createTenantSchema(trx, this.#database, tenantId, snapshotMigrations, { adoptRole: true });
        } else if (target.kind === 'in-place') {
          created = target.tenant;
          newKey = key;
          await createTenantSchema(trx, roles, schemaId, snapshotMigrations);
        } else if (target.kind === 'scratch') {
          created = target.tenant;
          newKey = key;
          // A scratch schema named after a random id no tenant has; rolled back with the rest.
          await createTenantSchema(trx, this.#database, newTenantId, snapshotMigrations);
        } else {
          created = await this.#tenants.insert(control, {
            id: newTenantId,
            slug: target.slug,
            name: target.name,
            schemaVersion: expectedVersion,
          });
          await createTenantSchema(trx, this.#database, newTenantId, snapshotMigrations);
          newKey = await this.#keys.createDataKey(control, newTenantId);
          rekeyer = new SealedValueRekeyer(
            { tenantId, keys: sourceKeys },
            { tenantId: newTenantId, key: newKey },
          );
        }
        await setJournalTriggers(trx, schema, false);
        await setUsageTriggers(trx, schema, false);

        // 1. The snapshot, streamed: checksum, decryption and decompression as the bytes arrive.
        const digest = createDigestStream();
        const snapshotKey = backupKeys.snapshot(tenantId, snapshot.snapshotId);
        let loaded = 0;
        try {
          await pipeline(
            await location.store.get(snapshotKey),
            digest,
            createDecryptStream(key.bytes, { aad: snapshotAad(tenantId, snapshot.snapshotId) }),
            createZstdDecompress(),
            async (source: AsyncIterable<Buffer>) => {
              let batch: unknown[] = [];
              let batchTable = '';
              const flush = async () => {
                await insertRows(trx, schema, batchTable, batch);
                loaded += batch.length;
                progress(loaded, 'snapshot rows');
                batch = [];
              };
              for await (const line of splitLines(source)) {
                const { table, row } = JSON.parse(line) as { table: string; row: unknown };
                if (!snapshot.tables.some((t) => t.name === table))
                  throw new Error(`unexpected table ${table}`);
                if ((table !== batchTable && batch.length > 0) || batch.length >= insertBatchRows)
                  await flush();
                batchTable = table;
                batch.push(rekeyer.rekeyRow(table, row as Record<string, unknown>));
              }
              if (batch.length > 0) await flush();
            },
          );
        } catch (error) {
          throw asCorrupt(location, snapshotKey, error);
        }
        const stored = digest.digest();
        if (stored.sha256 !== snapshot.sealedSha256 || stored.sizeBytes !== snapshot.sealedBytes) {
          throw backupErrors.corrupt(location.name, snapshotKey, 'checksum does not match the manifest');
        }
        for (const table of snapshot.tables) {
          const rows = await countRows(trx, schema, table.name);
          if (rows !== table.rows) {
            throw backupErrors.corrupt(
              location.name,
              snapshotKey,
              `${table.name} has ${rows} rows, the manifest says ${table.rows}`,
            );
          }
        }

        await analyzeTables(
          trx,
          schema,
          snapshot.tables.map((t) => t.name),
        );

        // 2. The journal after the snapshot: entries of transactions the snapshot does not show, up to T.
        let shapes = await readTableShapes(trx, schema);
        let version = snapshot.schemaVersion;
        /**
         * Brings the schema being restored to `name` (and the migrations before it) in the
         * transaction: a migration's marker in the journal, or the current version at the end.
         */
        const migrateTo = async (name: string) => {
          const migrations = this.#migrationsUpTo(name);
          if (migrations.length <= this.#migrationsUpTo(version).length) return;
          await migrateTenantSchema(trx, roles, schemaId, migrations);
          // Tables the migration added got live journal triggers: loading is not a change either.
          await setJournalTriggers(trx, schema, false);
          await setUsageTriggers(trx, schema, false);
          shapes = await readTableShapes(trx, schema);
          version = name;
        };
        let done = loaded;
        // Consecutive entries of one table and operation with distinct keys go as one statement; a
        // repeated key, another table or another operation starts the next batch, so order holds.
        let batch: JournalEntry[] = [];
        let batchKeys = new Set<string>();
        const flush = async () => {
          const first = batch[0];
          if (!first) return;
          await applyJournalBatch(trx, schema, first.table, shapes.get(first.table)!, first.op, batch);
          entriesReplayed += batch.length;
          batch = [];
          batchKeys = new Set();
        };
        for (const manifest of segments) {
          const segmentKey = backupKeys.segment(tenantId, manifest.segmentNo);
          const entries = await this.#readSegment(location, manifest, key);
          for (const entry of entries) {
            done++;
            if (isVisibleInSnapshot(entry.txid, snapshot.txSnapshot) || new Date(entry.at) > at) continue;
            // Past an in-place restore, the journal continues from the state it swapped in, which
            // no older snapshot shows: only a snapshot taken after it can serve such an instant.
            if (entry.table === inPlaceRestoreMarkerTable) throw backupErrors.acrossInPlaceRestore(entry.at);
            if (entry.table === migrationMarkerTable) {
              // A tenant migration ran here: the entries before it are in the old shape, those after
              // it (the migration's own row changes first) in the new one.
              const name = entry.key.name;
              if (typeof name !== 'string')
                throw backupErrors.corrupt(location.name, segmentKey, 'a migration marker without a name');
              await flush();
              await migrateTo(name);
              continue;
            }
            if (!shapes.has(entry.table))
              throw backupErrors.corrupt(location.name, segmentKey, `unknown table ${entry.table}`);
            const entryKey = JSON.stringify(entry.key);
            const first = batch[0];
            if (
              first &&
              (first.table !== entry.table ||
                first.op !== entry.op ||
                batchKeys.has(entryKey) ||
                batch.length >= replayBatchEntries)
            )
              await flush();
            batch.push({ ...entry, row: rekeyer.rekeyRow(entry.table, entry.row) });
            batchKeys.add(entryKey);
          }
          progress(done, `journal segment ${manifest.segmentNo}`);
        }
        await flush();
        // A restore to an instant before a migration: the live service serves only the current
        // version, so the restored schema is migrated as every live tenant was.
        if (expectedVersion) await migrateTo(expectedVersion);
        progress(done, 'attachment files');
        await this.#copyObjects(trx, schema, location, tenantId, sourceKeys, newTenantId, newKey, {
          copied,
          counts: objectCounts,
          now,
          reseal: target.kind === 'new',
          write: !isScratch,
        });
        if ((isRecovery || isInPlace) && created.schemaVersion !== expectedVersion) {
          // Backed up before a migration this Strongroom has: the control plane says where it is now.
          await this.#tenants.recordMigrated(control, tenantId, expectedVersion);
        }
        if (isRecovery) {
          const lastSegment = Math.max(snapshot.segmentPosition, ...segments.map((s) => s.segmentNo));
          await setSegmentPosition(
            trx,
            schema,
            lastSegment,
            this.#locations.map((l) => l.name),
          );
        }
        await resetIdentitySequences(trx, schema, shapes);
        await clearJournal(trx, schema);
        await setJournalTriggers(trx, schema, true);
        await setUsageTriggers(trx, schema, true);
        await recountUsage(trx, schema);
        if (target.kind === 'scratch') throw new ScratchRolledBack(await target.inspect(trx, schema));
        if (isInPlace) {
          // The swap, verified data in hand: pause, carry the bookkeeping, mark, rename twice.
          const live = tenantSchemaName(tenantId);
          const kept = keptSchemaName(tenantId);
          await pauseTenantWrites(trx, tenantId, pauseWaitMs);
          await carryBackupBookkeeping(trx, live, schema);
          await journalInPlaceRestore(trx, schema, { restoredTo: at.toISOString() });
          // The kept schema changes nothing and journals nothing until an undo brings it back.
          await setJournalTriggers(trx, live, false);
          await renameTenantDataSchema(trx, live, kept);
          await revokeTenantAccess(trx, this.#database, tenantId, kept);
          await renameTenantDataSchema(trx, schema, live);
          await grantTenantPrivileges(trx, this.#database, tenantId);
        }
        return created;
      })
      .catch(async (error: unknown) => {
        if (error instanceof ScratchRolledBack && target.kind === 'scratch') return target.tenant;
        // The new tenant never existed: take back the files copied for it. (A recovery writes the
        // tenant's own files back byte for byte, where they may have been already: those stay.)
        // (In place, likewise: they are the tenant's own files, which the live schema still names.)
        if (target.kind === 'new')
          for (const key of copied) await newObjects.delete(key).catch(() => undefined);
        throw error;
      });
    return {
      tenant,
      sourceTenantId: tenantId,
      at,
      location: location.name,
      snapshotId: snapshot.snapshotId,
      snapshotTakenAt: new Date(snapshot.takenAt),
      rowsLoaded: rowsTotal,
      entriesReplayed,
      segmentsRead: segments.length,
      objectsRestored: objectCounts.restored,
      objectsFromLiveStore: objectCounts.fromLiveStore,
      objectsUnchanged: objectCounts.unchanged,
    };
  }

  /**
   * The migrations up to and including `name`, in order: the schema version a backup was written
   * at. A name this Strongroom does not know was written by a newer version, which it cannot replay.
   */
  #migrationsUpTo(name: string): readonly Migration[] {
    const index = this.#migrations.findIndex((m) => m.name === name);
    if (index < 0) throw backupErrors.schemaMismatch(name, latestMigrationName(this.#migrations));
    return this.#migrations.slice(0, index + 1);
  }

  async #dataKey(tenantId: string, version?: number): Promise<DataKey> {
    try {
      return await this.#keys.getDataKey(tenantId, version);
    } catch (error) {
      if (isAppError(error) && error.code === keyErrors.dataKeyMissing.code)
        throw backupErrors.shredded(tenantId);
      throw error;
    }
  }

  /**
   * Brings back the files the restored rows name, from the location being restored from: each copy
   * is checked against its manifest (size and SHA-256) as it streams, opened with the source key and
   * sealed again under the new tenant's key and id at the same relative key (same chunk size, so
   * ranged reads work as before). The attachment object store is read only for a file the location
   * has no copy of (backups taken before files were copied to locations). A version retired longer
   * ago than the window may be gone from both (retention deleted it): it is recorded as purged. Any
   * other file missing, or a copy that fails its checks, fails the restore (`backup_corrupt`).
   */
  async #copyObjects(
    trx: Parameters<typeof listLiveObjectVersions>[0],
    schema: string,
    location: BackupLocation,
    sourceTenantId: string,
    sourceKeys: ReadonlyMap<number, DataKey>,
    newTenantId: string,
    newKey: DataKey,
    progress: {
      copied: string[];
      counts: { restored: number; fromLiveStore: number; unchanged: number };
      now: Date;
      /** false in a recovery: the tenant keeps its id and key, so the file is written back as it is. */
      reseal: boolean;
      /** false in a drill: the file is read and checked against its manifest, and not written. */
      write: boolean;
    },
  ): Promise<void> {
    const target = scopeObjectStore(this.#objects, `tenants/${newTenantId}/`);
    const retiredLongAgo = (row: RestoredObjectRow) =>
      row.retiredAt !== null && row.retiredAt.getTime() < progress.now.getTime() - this.#restoreWindowMs;
    for (const row of await listLiveObjectVersions(trx, schema)) {
      const key = sourceKeys.get(row.keyVersion);
      if (!key) throw backupErrors.shredded(sourceTenantId);
      const manifest = await this.#objectManifest(location, sourceTenantId, row.objectKey);
      // Into the tenant itself (same id, same key): a file the store still has intact stays as it is.
      if (!progress.reseal && progress.write && (await isIntact(target, row.objectKey, manifest))) {
        progress.counts.restored++;
        progress.counts.unchanged++;
        continue;
      }
      const source = await this.#openObject(location, sourceTenantId, row.objectKey, manifest);
      if (!source) {
        if (retiredLongAgo(row)) {
          await setObjectPurged(trx, schema, row);
          continue;
        }
        throw backupErrors.corrupt(
          location.name,
          backupKeys.object(sourceTenantId, row.objectKey),
          'the file is missing from this location and from the attachment object store',
        );
      }
      progress.copied.push(row.objectKey);
      const digest = createDigestStream();
      const sealed = new PassThrough();
      // Both settle before going on: a failed read must not leave a write finishing behind our back.
      const [read, write] = await Promise.allSettled([
        progress.reseal
          ? pipeline(
              source.body,
              digest,
              createDecryptStream(key.bytes, { aad: objectAad(sourceTenantId, row.objectKey) }),
              createEncryptStream(newKey.bytes, {
                aad: objectAad(newTenantId, row.objectKey),
                chunkSizeBytes: row.chunkSizeBytes,
              }),
              sealed,
            )
          : pipeline(source.body, digest, sealed),
        progress.write
          ? target.put(row.objectKey, sealed, { contentType: 'application/octet-stream' })
          : (async () => {
              // Read to the end (the digest sees every byte), kept nowhere.
              for await (const _ of sealed);
            })(),
      ]);
      if (read.status === 'rejected' || write.status === 'rejected') {
        const error = read.status === 'rejected' ? read.reason : (write as PromiseRejectedResult).reason;
        throw asCorrupt(location, backupKeys.object(sourceTenantId, row.objectKey), error);
      }
      const copy = digest.digest();
      if (
        source.manifest &&
        (copy.sha256 !== source.manifest.sealedSha256 || copy.sizeBytes !== source.manifest.sealedBytes)
      ) {
        throw backupErrors.corrupt(
          location.name,
          backupKeys.object(sourceTenantId, row.objectKey),
          'checksum does not match the manifest',
        );
      }
      if (progress.reseal) await setObjectKeyVersion(trx, schema, row, newKey.version);
      progress.counts.restored++;
      if (!source.manifest) progress.counts.fromLiveStore++;
    }
  }

  /** The location's manifest of a tenant's object; undefined if it has none (its copy was never made). */
  async #objectManifest(
    location: BackupLocation,
    tenantId: string,
    objectKey: string,
  ): Promise<ObjectManifest | undefined> {
    const manifestKey = backupKeys.objectManifest(tenantId, objectKey);
    try {
      if (!(await location.store.head(manifestKey))) return undefined;
      const manifest = await readManifest<ObjectManifest>(location.store, manifestKey, 'object');
      if (!manifest || manifest.tenantId !== tenantId || manifest.objectKey !== objectKey)
        throw backupErrors.corrupt(location.name, manifestKey, 'not a valid manifest for this file');
      return manifest;
    } catch (error) {
      if (isAppError(error) && error.code === backupErrors.corrupt.code) throw error;
      throw backupErrors.corrupt(location.name, manifestKey, (error as Error).message);
    }
  }

  /**
   * A tenant's object as a location holds it (when it has its manifest), else as the attachment
   * object store holds it (no manifest), else undefined.
   */
  async #openObject(
    location: BackupLocation,
    tenantId: string,
    objectKey: string,
    manifest: ObjectManifest | undefined,
  ): Promise<{ body: Readable; manifest: ObjectManifest | undefined } | undefined> {
    const isMissing = (error: unknown) => isAppError(error) && error.code === objectStoreErrors.notFound.code;
    if (manifest) {
      const key = backupKeys.object(tenantId, objectKey);
      try {
        return { body: await location.store.get(key), manifest };
      } catch (error) {
        throw backupErrors.corrupt(
          location.name,
          key,
          isMissing(error) ? 'missing: its manifest exists' : (error as Error).message,
        );
      }
    }
    try {
      return { body: await scopeObjectStore(this.#objects, `tenants/${tenantId}/`).get(objectKey), manifest };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  /** Every version of the source tenant's key that still exists, fetched before the transaction. */
  async #allDataKeys(tenantId: string, known: DataKey): Promise<Map<number, DataKey>> {
    const current = await this.#dataKey(tenantId);
    const keys = new Map<number, DataKey>([
      [known.version, known],
      [current.version, current],
    ]);
    for (let version = 1; version < current.version; version++) {
      if (keys.has(version)) continue;
      try {
        keys.set(version, await this.#keys.getDataKey(tenantId, version));
      } catch (error) {
        // A version that is gone sealed nothing this restore can still open; other errors are real.
        if (!isAppError(error) || error.code !== keyErrors.dataKeyMissing.code) throw error;
      }
    }
    return keys;
  }

  async #listManifests<T extends SegmentManifest | SnapshotManifest>(
    location: BackupLocation,
    prefix: string,
    kind: T['kind'],
  ): Promise<T[]> {
    const manifests: T[] = [];
    try {
      for await (const info of location.store.list(prefix)) {
        if (!info.key.endsWith('.json')) continue;
        const manifest = await readManifest<T>(location.store, info.key, kind);
        if (!manifest) throw backupErrors.corrupt(location.name, info.key, 'not a valid manifest');
        manifests.push(manifest);
      }
    } catch (error) {
      if (isAppError(error) && error.code === backupErrors.corrupt.code) throw error;
      // An unreachable location: the caller tries the next one.
      throw backupErrors.corrupt(location.name, prefix, (error as Error).message);
    }
    return manifests;
  }

  /** The segments after the snapshot's position, without a gap, skipping those that start after T. */
  async #segmentsAfter(
    location: BackupLocation,
    tenantId: string,
    position: number,
    at: Date,
  ): Promise<SegmentManifest[]> {
    const all = await this.#listManifests<SegmentManifest>(
      location,
      backupKeys.segmentsPrefix(tenantId),
      'segment',
    );
    const after = all.filter((s) => s.segmentNo > position).sort((a, b) => a.segmentNo - b.segmentNo);
    let expected = position + 1;
    for (const segment of after) {
      if (segment.segmentNo !== expected) {
        throw backupErrors.corrupt(
          location.name,
          backupKeys.segmentManifest(tenantId, expected),
          `journal segment ${expected} is missing`,
        );
      }
      expected++;
    }
    const needed = after.filter((s) => new Date(s.firstAt) <= at);
    // Refused before anything is written: a segment sealed by a newer Strongroom.
    for (const segment of needed) this.#migrationsUpTo(segment.schemaVersion);
    return needed;
  }

  async #readSegment(
    location: BackupLocation,
    manifest: SegmentManifest,
    key: DataKey,
  ): Promise<JournalEntry[]> {
    const segmentKey = backupKeys.segment(manifest.tenantId, manifest.segmentNo);
    try {
      const sealed = await readAll(await location.store.get(segmentKey));
      if (sealed.length !== manifest.sealedBytes || sha256Hex(sealed) !== manifest.sealedSha256) {
        throw new Error('checksum does not match the manifest');
      }
      const plaintext = zstdDecompressSync(
        decryptBuffer(key.bytes, sealed, { aad: segmentAad(manifest.tenantId, manifest.segmentNo) }),
      );
      const entries = plaintext
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as JournalEntry);
      if (entries.length !== manifest.entryCount)
        throw new Error(`holds ${entries.length} entries, the manifest says ${manifest.entryCount}`);
      return entries;
    } catch (error) {
      throw asCorrupt(location, segmentKey, error);
    }
  }
}

/**
 * Whether the attachment store holds the object intact: with the location's manifest, the same size
 * and SHA-256 as the location's copy (written from the same sealed bytes); without one, the store's
 * file is the only copy there is, so present is all that can be asked.
 */
async function isIntact(store: ObjectStore, objectKey: string, manifest: ObjectManifest | undefined) {
  const info = await store.head(objectKey);
  if (!info) return false;
  if (!manifest) return true;
  if (info.sizeBytes !== manifest.sealedBytes) return false;
  try {
    const hash = createHash('sha256');
    for await (const chunk of await store.get(objectKey)) hash.update(chunk as Buffer);
    return hash.digest('hex') === manifest.sealedSha256;
  } catch {
    // Gone or unreadable since the look-up: written again from the location.
    return false;
  }
}

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function asCorrupt(location: BackupLocation, key: string, error: unknown): unknown {
  if (isAppError(error) && error.code !== cryptoErrors.decryptionFailed.code) return error;
  const reason = isAppError(error)
    ? 'decryption failed (tampered, truncated or wrong key)'
    : (error as Error).message;
  return backupErrors.corrupt(location.name, key, reason);
}

/** Splits a byte stream into lines without holding more than one line beyond the current chunk. */
async function* splitLines(source: AsyncIterable<Buffer>): AsyncGenerator<string> {
  // A chunk may end inside a multi-byte character: the decoder holds those bytes for the next one.
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of source) {
    const text = rest + decoder.write(chunk);
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) if (line) yield line;
  }
  rest += decoder.end();
  if (rest) yield rest;
}

/**
 * Whether a transaction is visible in a `txid_current_snapshot()` text (`xmin:xmax:xip,…`): committed
 * before the snapshot began. Such a transaction's changes are already in the snapshot's rows.
 */
export function isVisibleInSnapshot(txid: string, snapshot: string): boolean {
  const [xmin, xmax, xip = ''] = snapshot.split(':');
  const id = BigInt(txid);
  if (id < BigInt(xmin!)) return true;
  if (id >= BigInt(xmax!)) return false;
  return !xip
    .split(',')
    .filter(Boolean)
    .some((x) => BigInt(x) === id);
}
