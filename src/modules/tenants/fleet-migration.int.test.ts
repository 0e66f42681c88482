import { type KyselyPlugin, sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { LocalKeyProvider } from '../../adapters/keys/key-provider.local.ts';
import { tenantMigrations } from '../../db/migrations/tenant/index.ts';
import type { Migration, MigrationContext } from '../../db/migrator.ts';
import { tenantSchemaName } from '../../db/tenant-schema.ts';
import { type Core, composeCore } from '../../main/compose.ts';
import {
  FleetMigrationService as Fleet,
  type FleetMigrationService,
  type FleetProgress,
} from './fleet-migration.service.ts';
import { type Tenant, TenantRepository } from './tenant.repository.ts';

const baseVersion = tenantMigrations.at(-1)!.name;
const target = '29990101000000-add-settings-note';

/**
 * The next release's tenant migration: adds `settings.note`. `before` runs first inside `up`, in the
 * tenant's migration transaction; it may throw (that tenant fails) or wait (the run stays in flight).
 */
function addSettingsNote(before?: (context: MigrationContext) => Promise<void> | void): Migration {
  return {
    name: target,
    async up(context) {
      await context.db.schema.alterTable('settings').addColumn('note', 'text').execute();
      await before?.(context);
    },
    async down({ db }) {
      await db.schema.alterTable('settings').dropColumn('note').execute();
    },
  };
}

/** The fleet migrator of the next release, over the same database. */
function nextReleaseFleet(core: Core, masterKey: Buffer, migration: Migration): FleetMigrationService {
  return composeCore({
    database: core.database,
    objects: core.objects,
    keyProvider: new LocalKeyProvider({ current: masterKey }),
    tenantMigrations: [...tenantMigrations, migration],
  }).fleet;
}

/**
 * A fleet migrator whose process can "die": after `sever()` none of its queries reach the database
 * any more, so (unlike a thrown error) its `finally` cannot release the lease or close its run row.
 */
function severableFleet(
  core: Core,
  migration: Migration,
): { fleet: FleetMigrationService; sever: () => void } {
  let severed = false;
  const plugin: KyselyPlugin = {
    transformQuery(args) {
      if (severed) throw new Error('simulated crash: the process is gone');
      return args.node;
    },
    async transformResult(args) {
      return args.result;
    },
  };
  const db = core.database.db.withPlugin(plugin);
  const control = core.database.control.withPlugin(plugin);
  const fleet = new Fleet({
    database: { ...core.database, db, control },
    tenants: new TenantRepository(control),
    migrations: [...tenantMigrations, migration],
  });
  return { fleet, sever: () => (severed = true) };
}

/** Creates tenants one after another, so the oldest-first order (the canary) is the creation order. */
async function createTenants(core: Core, count: number): Promise<Tenant[]> {
  const tenants: Tenant[] = [];
  for (let i = 0; i < count; i++) {
    const slug = `fleet-${String(i).padStart(2, '0')}`;
    tenants.push((await core.tenants.create({ slug, name: slug, ownerEmail: `o${i}@fleet.test` })).tenant);
  }
  return tenants;
}

async function reload(core: Core, tenant: Tenant): Promise<Tenant> {
  return (await core.tenantRepository.findById(tenant.id))!;
}

async function hasNoteColumn(core: Core, tenant: Tenant): Promise<boolean> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from information_schema.columns
    where table_schema = ${tenantSchemaName(tenant.id)} and table_name = 'settings' and column_name = 'note'`.execute(
    core.database.db,
  );
  return rows[0]!.n === 1;
}

async function migrationRuns(core: Core) {
  return core.database.control.selectFrom('migration_runs').selectAll().orderBy('started_at').execute();
}

async function countAt(core: Core, version: string): Promise<number> {
  const rows = await core.database.control
    .selectFrom('tenants')
    .select('id')
    .where('schema_version', '=', version)
    .execute();
  return rows.length;
}

/** Settles a promise into its value or its rejection reason, so it can be awaited later without an unhandled rejection. */
function settle<T>(promise: Promise<T>): Promise<T | unknown> {
  return promise.then(
    (value) => value,
    (error: unknown) => error,
  );
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`fleet migration on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let masterKey: Buffer;

    beforeEach(async () => {
      ({ core, testDb, masterKey } = await openTestCore(kind));
    });
    afterEach(async () => testDb?.close());

    it('migrates every tenant in canary and batches, reporting progress and recording the run', async () => {
      const tenants = await createTenants(core, 12);
      const fleet = nextReleaseFleet(core, masterKey, addSettingsNote());
      const progress: FleetProgress[] = [];

      const summary = await fleet.run({
        batchSize: 4,
        concurrency: 3,
        canarySize: 2,
        onProgress: (p) => progress.push(p),
      });

      expect(summary).toMatchObject({
        target,
        status: 'succeeded',
        total: 12,
        migrated: 12,
        failed: 0,
        skipped: 0,
        failures: [],
        abortReason: undefined,
      });
      for (const tenant of tenants) {
        expect(await reload(core, tenant)).toMatchObject({ schemaVersion: target, migrationStatus: 'ok' });
        expect(await hasNoteColumn(core, tenant)).toBe(true);
      }
      const migrated = progress.map((p) => p.migrated);
      expect(migrated.at(-1)).toBe(12);
      for (let i = 1; i < migrated.length; i++) expect(migrated[i]).toBeGreaterThan(migrated[i - 1]!);
      expect(progress.every((p) => p.total === 12 && p.failed === 0)).toBe(true);
      expect(progress[0]!.phase).toBe('canary');
      expect(progress.at(-1)!.phase).toBe('fleet');
      expect(await migrationRuns(core)).toEqual([
        expect.objectContaining({
          id: summary.runId,
          target,
          status: 'succeeded',
          tenants_total: 12,
          tenants_migrated: 12,
          tenants_failed: 0,
          finished_at: expect.any(Date),
        }),
      ]);

      const again = await fleet.run({ batchSize: 4, concurrency: 3, canarySize: 2 });
      expect(again).toMatchObject({ status: 'succeeded', total: 0, migrated: 0, failed: 0 });
    });

    it('stops before the fleet when a canary tenant fails, leaving the others untouched', async () => {
      const tenants = await createTenants(core, 6);
      const broken = tenants[0]!; // the oldest: part of the canary
      const fleet = nextReleaseFleet(
        core,
        masterKey,
        addSettingsNote(({ schema }) => {
          if (schema === tenantSchemaName(broken.id)) throw new Error('canary says no');
        }),
      );

      const summary = await fleet.run({ batchSize: 4, concurrency: 2, canarySize: 2 });

      expect(summary).toMatchObject({ status: 'aborted', total: 6, migrated: 1, failed: 1, skipped: 4 });
      expect(summary.abortReason).toMatch(/canary/);
      expect(summary.failures).toEqual([
        { tenantId: broken.id, slug: broken.slug, error: expect.stringContaining('canary says no') },
      ]);
      expect(await reload(core, broken)).toMatchObject({
        schemaVersion: baseVersion,
        migrationStatus: 'failed',
      });
      expect(await reload(core, tenants[1]!)).toMatchObject({ schemaVersion: target, migrationStatus: 'ok' });
      for (const untouched of tenants.slice(2)) {
        expect(await reload(core, untouched)).toMatchObject({
          schemaVersion: baseVersion,
          migrationStatus: 'ok',
        });
        expect(await hasNoteColumn(core, untouched)).toBe(false);
      }
      expect(await migrationRuns(core)).toEqual([
        expect.objectContaining({ status: 'aborted', tenants_failed: 1 }),
      ]);
    });

    it('records a failure outside the canary, migrates the rest, and retries just that tenant', async () => {
      const tenants = await createTenants(core, 8);
      const broken = tenants[5]!;
      let fixed = false;
      const fleet = nextReleaseFleet(
        core,
        masterKey,
        addSettingsNote(({ schema }) => {
          if (!fixed && schema === tenantSchemaName(broken.id)) throw new Error('not today');
        }),
      );

      const summary = await fleet.run({ batchSize: 3, concurrency: 2, canarySize: 2 });

      expect(summary).toMatchObject({ status: 'failed', total: 8, migrated: 7, failed: 1, skipped: 0 });
      expect(summary.failures).toEqual([
        { tenantId: broken.id, slug: broken.slug, error: expect.stringContaining('not today') },
      ]);
      const failed = await reload(core, broken);
      expect(failed).toMatchObject({ schemaVersion: baseVersion, migrationStatus: 'failed' });
      expect(failed.migrationError).toContain('not today');
      // Its transaction rolled back: the column the migration added before throwing is not there.
      expect(await hasNoteColumn(core, broken)).toBe(false);
      for (const tenant of tenants.filter((t) => t.id !== broken.id)) {
        expect(await reload(core, tenant)).toMatchObject({ schemaVersion: target, migrationStatus: 'ok' });
      }
      expect(await migrationRuns(core)).toEqual([
        expect.objectContaining({
          status: 'failed',
          tenants_total: 8,
          tenants_migrated: 7,
          tenants_failed: 1,
        }),
      ]);

      fixed = true;
      const retry = await fleet.run({ batchSize: 3, concurrency: 2, canarySize: 2 });

      expect(retry).toMatchObject({ status: 'succeeded', total: 1, migrated: 1, failed: 0 });
      expect(await reload(core, broken)).toMatchObject({
        schemaVersion: target,
        migrationStatus: 'ok',
        migrationError: null,
      });
      expect(await hasNoteColumn(core, broken)).toBe(true);
    });

    it('resumes after a crash mid-fleet, once the crashed holder’s lease has run out', async () => {
      const tenants = await createTenants(core, 8);
      const migration = addSettingsNote();
      const crashing = severableFleet(core, migration);

      // One at a time, so the crash point is exact: the process dies right after the third tenant.
      const crashed = crashing.fleet.run({
        batchSize: 3,
        concurrency: 1,
        canarySize: 1,
        onProgress: ({ migrated }) => {
          if (migrated === 3) {
            crashing.sever();
            throw new Error('simulated crash');
          }
        },
      });
      await expect(crashed).rejects.toThrow('simulated crash');

      expect(await countAt(core, target)).toBe(3);
      const [orphan] = await migrationRuns(core);
      expect(orphan).toMatchObject({ status: 'running', tenants_total: 8 });
      const lease = await core.database.control.selectFrom('leases').selectAll().executeTakeFirstOrThrow();
      expect(lease.holder).toBe(orphan!.holder);

      const fleet = nextReleaseFleet(core, masterKey, migration);
      await expect(fleet.run({ batchSize: 3, concurrency: 2, canarySize: 1 })).rejects.toMatchObject({
        code: 'migration_in_progress',
        message: expect.stringContaining(orphan!.holder),
      });
      expect(await countAt(core, target)).toBe(3);

      await sql`update control.leases set expires_at = now() - interval '1 second'`.execute(core.database.db);
      const resumed = await fleet.run({ batchSize: 3, concurrency: 2, canarySize: 1 });

      expect(resumed).toMatchObject({ status: 'succeeded', total: 5, migrated: 5, failed: 0 });
      for (const tenant of tenants) {
        expect(await reload(core, tenant)).toMatchObject({ schemaVersion: target, migrationStatus: 'ok' });
        expect(await hasNoteColumn(core, tenant)).toBe(true);
      }
      const runs = await migrationRuns(core);
      expect(runs.find((r) => r.id === orphan!.id)).toMatchObject({
        status: 'aborted',
        finished_at: expect.any(Date),
      });
      expect(runs.find((r) => r.id === resumed.runId)).toMatchObject({
        status: 'succeeded',
        tenants_migrated: 5,
      });
      expect(await core.database.control.selectFrom('leases').selectAll().execute()).toEqual([]);
    });

    it('refuses a second run while one is in progress', async () => {
      const tenants = await createTenants(core, 3);
      const entered = Promise.withResolvers<void>();
      const gate = Promise.withResolvers<void>();
      const fleet = nextReleaseFleet(
        core,
        masterKey,
        addSettingsNote(async ({ schema }) => {
          if (schema !== tenantSchemaName(tenants[0]!.id)) return;
          entered.resolve();
          await gate.promise;
        }),
      );
      const options = { batchSize: 3, concurrency: 1, canarySize: 0 };

      const first = fleet.run(options);
      await entered.promise; // the first run holds the lease and is inside a tenant's migration
      const second = settle(fleet.run(options));
      if (kind.name === 'pglite') {
        // One connection: the second run's lease query queues behind the first's open transaction.
        // Let it queue (a macrotask; the path to the queue is microtasks only), then open the gate; the
        // first run still holds its lease for several more queries after that.
        await new Promise(setImmediate);
        gate.resolve();
      }
      expect(await second).toMatchObject({ code: 'migration_in_progress' });
      gate.resolve();

      const summary = await first;
      expect(summary).toMatchObject({ status: 'succeeded', total: 3, migrated: 3 });
      const runs = await migrationRuns(core);
      expect(runs).toHaveLength(1); // the refused run recorded nothing
      expect(((await second) as Error).message).toContain(runs[0]!.holder);
    });
  });
}
