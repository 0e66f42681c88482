import { type Kysely, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { LocalKeyProvider } from '../adapters/keys/key-provider.local.ts';
import { type Core, composeCore } from '../main/compose.ts';
import { migrateControlPlane, revertControlPlane } from './control-plane.ts';
import { controlMigrations } from './migrations/control/index.ts';
import { tenantMigrations } from './migrations/tenant/index.ts';
import { listAppliedMigrations, type Migration, migrateSchemaUp } from './migrator.ts';
import { tenantSchemaName } from './tenant-schema.ts';
import { migrateTenantSchema, revertTenantSchema } from './tenant-schemas.ts';

const controlTables = [
  'access_requests',
  'audit_checkpoints',
  'audit_log',
  'backup_drills',
  'credentials',
  'key_check',
  'leases',
  'migration_runs',
  'restore_jobs',
  'setup_tokens',
  'staff',
  'staff_keys',
  'tenant_api_calls',
  'tenant_keys',
  'tenant_limits',
  'tenants',
];

/** The next release's migration: an additive, nullable column on `settings`, and its exact inverse. */
const addSettingsNote: Migration = {
  name: '29990101000000-add-settings-note',
  async up({ db }) {
    await db.schema.alterTable('settings').addColumn('note', 'text').execute();
  },
  async down({ db }) {
    await db.schema.alterTable('settings').dropColumn('note').execute();
  },
};

async function tablesIn(db: Kysely<unknown>, schema: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select table_name as name from information_schema.tables
    where table_schema = ${schema} and table_type = 'BASE TABLE' order by table_name`.execute(db);
  return rows.map((r) => r.name);
}

async function columnsOf(db: Kysely<unknown>, schema: string, table: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select column_name as name from information_schema.columns
    where table_schema = ${schema} and table_name = ${table} order by ordinal_position`.execute(db);
  return rows.map((r) => r.name);
}

/** The same database, as the next release of the app (with more tenant migrations) would open it. */
function upgradedCore(core: Core, masterKey: Buffer, migrations: readonly Migration[]): Core {
  return composeCore({
    database: core.database,
    objects: core.objects,
    keyProvider: new LocalKeyProvider({ current: masterKey }),
    tenantMigrations: migrations,
  });
}

async function createTenants(core: Core, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const { tenant } = await core.tenants.create({
      slug: `mig-${i}`,
      name: `Tenant ${i}`,
      ownerEmail: `o${i}@mig.test`,
    });
    ids.push(tenant.id);
  }
  return ids;
}

async function readSettings(core: Core, tenantId: string): Promise<{ key: string; value: unknown }[]> {
  return core.withTenant(tenantId, (scope) =>
    scope.db.selectFrom('settings').select(['key', 'value']).orderBy('key').execute(),
  );
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`schema migrations on ${kind.name}${kind.skipReason}`, () => {
    const opened: TestDatabase[] = [];
    afterEach(async () => {
      for (const testDb of opened.splice(0)) await testDb.close();
    });

    it('takes the control plane up, down and up again on an empty database', async () => {
      const testDb = await kind.open();
      opened.push(testDb);
      const { db } = testDb.database;
      const names = controlMigrations.map((m) => m.name);

      expect(await migrateControlPlane(db, controlMigrations)).toEqual(names);
      expect(await tablesIn(db, 'control')).toEqual(['_migrations', ...controlTables]);
      // Idempotent: a second start applies nothing.
      expect(await migrateControlPlane(db, controlMigrations)).toEqual([]);

      expect(await revertControlPlane(db, controlMigrations, controlMigrations.length)).toEqual(
        [...names].reverse(),
      );
      expect(await tablesIn(db, 'control')).toEqual(['_migrations']);
      expect(await listAppliedMigrations(db, 'control')).toEqual([]);

      expect(await migrateControlPlane(db, controlMigrations)).toEqual(names);
      expect(await tablesIn(db, 'control')).toEqual(['_migrations', ...controlTables]);
      expect(await listAppliedMigrations(db, 'control')).toEqual(names);
    });

    it('takes seeded tenants up, down and up again without losing their data', async () => {
      const { core, testDb, masterKey } = await openTestCore(kind);
      opened.push(testDb);
      const ids = await createTenants(core, 3);
      for (const [i, id] of ids.entries()) {
        await core.withTenant(id, (scope) =>
          scope.db
            .insertInto('settings')
            .values({ key: 'theme', value: JSON.stringify({ tenant: i }) })
            .execute(),
        );
      }
      const migrations = [...tenantMigrations, addSettingsNote];
      const next = upgradedCore(core, masterKey, migrations);
      const { db } = core.database;

      // Up, across the fleet.
      const summary = await next.fleet.run({ batchSize: 2, concurrency: 2, canarySize: 1 });
      expect(summary).toMatchObject({ status: 'succeeded', total: 3, migrated: 3, failed: 0 });
      for (const [i, id] of ids.entries()) {
        expect(await columnsOf(db, tenantSchemaName(id), 'settings')).toContain('note');
        expect((await core.tenantRepository.findById(id))?.schemaVersion).toBe(addSettingsNote.name);
        expect(await readSettings(core, id)).toEqual([{ key: 'theme', value: { tenant: i } }]);
      }
      // The tenant's own role may use the new column.
      await core.withTenant(ids[0], (scope) =>
        scope.db.updateTable('settings').set({ note: 'hello' }).execute(),
      );

      // Down, one tenant at a time, each in its own transaction.
      for (const id of ids) {
        const reverted = await db.transaction().execute((trx) => revertTenantSchema(trx, id, migrations, 1));
        expect(reverted).toEqual([addSettingsNote.name]);
      }
      for (const [i, id] of ids.entries()) {
        expect(await columnsOf(db, tenantSchemaName(id), 'settings')).not.toContain('note');
        expect(await listAppliedMigrations(db, tenantSchemaName(id))).toEqual(
          tenantMigrations.map((m) => m.name),
        );
        expect(await readSettings(core, id)).toEqual([{ key: 'theme', value: { tenant: i } }]);
      }

      // Up again.
      for (const id of ids) {
        const applied = await db
          .transaction()
          .execute((trx) => migrateTenantSchema(trx, core.database, id, migrations));
        expect(applied).toEqual([addSettingsNote.name]);
      }
      for (const [i, id] of ids.entries()) {
        expect(await columnsOf(db, tenantSchemaName(id), 'settings')).toContain('note');
        expect(await listAppliedMigrations(db, tenantSchemaName(id))).toEqual(migrations.map((m) => m.name));
        expect(await readSettings(core, id)).toEqual([{ key: 'theme', value: { tenant: i } }]);
      }
      await core.withTenant(ids[1], (scope) =>
        scope.db.updateTable('settings').set({ note: 'back' }).execute(),
      );
    });

    it('refuses a schema migrated by a newer version, naming the unknown migrations', async () => {
      const newer = [...tenantMigrations, addSettingsNote];
      const { core, testDb } = await openTestCore(kind, { tenantMigrations: newer });
      opened.push(testDb);
      const { tenant } = await core.tenants.create({
        slug: 'from-the-future',
        name: 'F',
        ownerEmail: 'o@f.test',
      });
      const schema = tenantSchemaName(tenant.id);

      await expect(
        core.database.db.transaction().execute((trx) => migrateSchemaUp(trx, schema, tenantMigrations)),
      ).rejects.toMatchObject({
        code: 'migration_unknown',
        details: { schema, names: [addSettingsNote.name] },
      });
      expect(await listAppliedMigrations(core.database.db, schema)).toEqual(newer.map((m) => m.name));
      expect(await columnsOf(core.database.db, schema, 'settings')).toContain('note');
    });

    it('leaves the schema at its previous version when a migration fails part-way', async () => {
      const { core, testDb } = await openTestCore(kind);
      opened.push(testDb);
      const { tenant } = await core.tenants.create({ slug: 'half-done', name: 'H', ownerEmail: 'o@h.test' });
      const schema = tenantSchemaName(tenant.id);
      const failing: Migration = {
        name: '29990102000000-add-things-then-fail',
        async up({ db }) {
          await db.schema.alterTable('settings').addColumn('half', 'text').execute();
          await db.schema.createTable('leftover').addColumn('id', 'integer').execute();
          throw new Error('disk on fire');
        },
        async down() {
          // never applied, so never reverted
        },
      };
      const migrations = [...tenantMigrations, addSettingsNote, failing];
      const tablesBefore = await tablesIn(core.database.db, schema);

      await expect(
        core.database.db
          .transaction()
          .execute((trx) => migrateTenantSchema(trx, core.database, tenant.id, migrations)),
      ).rejects.toMatchObject({
        code: 'migration_failed',
        message: expect.stringContaining(`${failing.name} failed on ${schema}: disk on fire`),
        details: { schema, migration: failing.name },
      });

      // Neither the failing migration nor the good one before it in the same run left a trace.
      const { db } = core.database;
      expect(await listAppliedMigrations(db, schema)).toEqual(tenantMigrations.map((m) => m.name));
      expect(await columnsOf(db, schema, 'settings')).not.toContain('half');
      expect(await columnsOf(db, schema, 'settings')).not.toContain('note');
      expect(await tablesIn(db, schema)).toEqual(tablesBefore);
      expect(tablesBefore).not.toContain('leftover');
      // And the tenant still works.
      expect(await readSettings(core, tenant.id)).toEqual([]);
    });
  });
}
