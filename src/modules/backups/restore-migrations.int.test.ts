import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { dumpTenant } from '../../../test/support/tenant-dump.ts';
import { LocalKeyProvider } from '../../adapters/keys/key-provider.local.ts';
import { FsObjectStore } from '../../adapters/object-store/object-store.fs.ts';
import { tenantMigrations } from '../../db/migrations/tenant/index.ts';
import { listAppliedMigrations, type Migration } from '../../db/migrator.ts';
import { keptSchemaName, tenantSchemaName } from '../../db/tenant-schema.ts';
import { type Core, composeCore } from '../../main/compose.ts';
import { systemClock } from '../../platform/clock.ts';
import { BackupService } from './backup.service.ts';
import type { BackupLocation } from './backup-format.ts';

/** The next release's tenant migrations: one adds a column with a default, one transforms rows. */
const addNote: Migration = {
  name: '29990101000000-add-settings-note',
  async up({ db }) {
    await db.schema
      .alterTable('settings')
      .addColumn('note', 'text', (c) => c.notNull().defaultTo('none'))
      .execute();
  },
  async down({ db }) {
    await db.schema.alterTable('settings').dropColumn('note').execute();
  },
};
const wrapValues: Migration = {
  name: '29990101000001-wrap-settings-values',
  async up({ trx, schema }) {
    await sql`update ${sql.id(schema, 'settings')} set value = jsonb_build_object('was', value), note = 'wrapped'`.execute(
      trx,
    );
  },
  async down({ trx, schema }) {
    await sql`update ${sql.id(schema, 'settings')} set value = value -> 'was'`.execute(trx);
  },
};
const nextMigrations = [...tenantMigrations, addNote, wrapValues];

/** What the two migrations make of a settings row: the state a pre-migration instant is served in. */
function migrateSettingsRow(text: string): string {
  const row = JSON.parse(text) as Record<string, unknown>;
  return canonical({ ...row, value: { was: row.value }, note: 'wrapped' });
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

function canonicalDump(dump: Record<string, string[]>): Record<string, string[]> {
  return Object.fromEntries(
    Object.entries(dump).map(([table, rows]) => [table, rows.map((r) => canonical(JSON.parse(r))).sort()]),
  );
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(
    `restore across tenant migrations on ${kind.name}${kind.skipReason}`,
    () => {
      let core: Core;
      let testDb: TestDatabase;
      let tenantId: string;
      let locations: BackupLocation[];
      /** The backups of this release (before the migrations) and of the next one (after them). */
      let before: BackupService;
      let after: BackupService;
      let migratedAt: Date;
      /** The tenant's unshipped journal right after the migration, in order. */
      let journalAfterMigration: Array<{ table: string; op: string; name: unknown }> = [];
      /** Instants with the state recorded then, and whether the tenant was migrated by then. */
      const recorded: Array<{ at: Date; state: Record<string, string[]>; migrated: boolean }> = [];

      const backupsWith = (migrations: readonly Migration[]) =>
        new BackupService({
          database: core.database,
          tenants: core.tenantRepository,
          withTenant: core.withTenant,
          keys: core.keys,
          locations,
          migrations,
          clock: systemClock,
          restoreWindowMs: 7 * 24 * 3600_000,
          objects: core.objects,
        });
      const record = async (migrated: boolean) => {
        await sleep(15);
        recorded.push({ at: new Date(), state: await dumpTenant(core, tenantId), migrated });
        await sleep(15);
      };
      const setSetting = (key: string, value: unknown, note?: string) =>
        core.withTenant(tenantId, ({ trx, schema }) =>
          note === undefined
            ? sql`insert into ${sql.id(schema, 'settings')} (key, value) values (${key}, ${JSON.stringify(value)}::jsonb)
              on conflict (key) do update set value = excluded.value`.execute(trx)
            : sql`insert into ${sql.id(schema, 'settings')} (key, value, note) values (${key}, ${JSON.stringify(value)}::jsonb, ${note})
              on conflict (key) do update set value = excluded.value, note = excluded.note`.execute(trx),
        );

      let masterKey: Buffer;
      /** The fleet migrator of a release with `migrations`, over the same database. */
      const migrateFleet = async (migrations: readonly Migration[]) => {
        const release = composeCore({
          database: core.database,
          objects: core.objects,
          keyProvider: new LocalKeyProvider({ current: masterKey }),
          tenantMigrations: migrations,
        });
        const summary = await release.fleet.run({ batchSize: 10, concurrency: 1, canarySize: 1 });
        expect(summary.status).toBe('succeeded');
      };

      beforeAll(async () => {
        ({ core, testDb, masterKey } = await openTestCore(kind));
        locations = ['primary', 'secondary'].map((name) => ({
          name,
          store: new FsObjectStore({ rootDir: mkdtempSync(join(tmpdir(), `strongroom-backup-${name}-`)) }),
        }));
        before = backupsWith(core.tenantMigrations);
        after = backupsWith(nextMigrations);
        tenantId = (await core.tenants.create({ slug: 'acme', name: 'Acme', ownerEmail: 'o@acme.test' }))
          .tenant.id;
        await setSetting('theme', 'dark');
        await before.shipTenant(tenantId);
        await before.snapshotTenant(tenantId);
        await record(false);
        await setSetting('theme', 'light');
        await setSetting('lang', 'en');
        await before.shipTenant(tenantId);
        await record(false);
        // Left in the journal across the migration: its segment holds both versions' entries.
        await setSetting('tz', 'UTC');
        await record(false);

        // The next release migrates the tenant (its fleet migrator, over the same database).
        migratedAt = new Date();
        await migrateFleet(nextMigrations);
        const { rows } = await sql<{ table: string; op: string; name: unknown }>`
        select table_name as table, op, key -> 'name' as name
        from ${sql.id(tenantSchemaName(tenantId), '_journal')} order by seq`.execute(core.database.db);
        journalAfterMigration = rows;
        await record(true);
        await setSetting('region', 'eu', 'set after');
        await setSetting('theme', 'sepia');
        await record(true);
        await after.shipTenant(tenantId);
      }, 120_000);
      afterAll(async () => testDb?.close());

      it('journals each migration as a marker before its own row changes', () => {
        const theme = journalAfterMigration.findIndex((e) => e.table === 'settings' && e.op === 'update');
        const tz = journalAfterMigration.findIndex((e) => e.table === 'settings' && e.op === 'insert');
        const marker = (m: Migration) =>
          journalAfterMigration.findIndex((e) => e.table === '_migrations' && e.name === m.name);
        expect(tz).toBeGreaterThanOrEqual(0);
        expect([tz, marker(addNote), marker(wrapValues), theme]).toEqual(
          [tz, marker(addNote), marker(wrapValues), theme].sort((a, b) => a - b),
        );
        expect(marker(addNote)).toBeGreaterThan(tz);
        expect(theme).toBeGreaterThan(marker(wrapValues));
      });

      it('restores to instants before, at and after the migration: 0 differences', async () => {
        for (const [i, { at, state, migrated }] of recorded.entries()) {
          const result = await after.restore({ tenant: 'acme', at, intoSlug: `acme-at-${i}` });
          const expected = canonicalDump(state);
          // Served at the current version: a pre-migration instant comes back migrated.
          if (!migrated) expected.settings = state.settings!.map(migrateSettingsRow).sort();
          expect(canonicalDump(await dumpTenant(core, result.tenant.id)), `state at instant ${i}`).toEqual(
            expected,
          );
          expect(result.tenant.schemaVersion).toBe(wrapValues.name);
          expect(await listAppliedMigrations(core.database.db, tenantSchemaName(result.tenant.id))).toEqual(
            nextMigrations.map((m) => m.name),
          );
        }
        expect(recorded[2]!.at < migratedAt).toBe(true);
      }, 120_000);

      it('refuses a backup written at a version this Strongroom does not know, creating nothing', async () => {
        await expect(
          before.restore({ tenant: 'acme', at: recorded.at(-1)!.at, intoSlug: 'acme-older-release' }),
        ).rejects.toMatchObject({ code: 'restore_schema_version_unsupported' });
        expect(await core.tenantRepository.findLiveBySlug('acme-older-release')).toBeUndefined();
      }, 60_000);

      it('refuses to undo an in-place restore across a tenant migration (restore_kept_version_differs); confirm still works', async () => {
        await after.restoreInPlace({ tenant: 'acme', at: recorded.at(-1)!.at });
        const kept = keptSchemaName(tenantId);
        // A later release migrates the live schema; the fleet migrator leaves the kept one as it was.
        const addFlag: Migration = {
          name: '29990101000002-add-settings-flag',
          async up({ db }) {
            await db.schema.alterTable('settings').addColumn('flag', 'boolean').execute();
          },
          async down({ db }) {
            await db.schema.alterTable('settings').dropColumn('flag').execute();
          },
        };
        const latest = [...nextMigrations, addFlag];
        await migrateFleet(latest);
        const live = await dumpTenant(core, tenantId);
        await expect(backupsWith(latest).undoInPlaceRestore('acme')).rejects.toMatchObject({
          code: 'restore_kept_version_differs',
          details: { tenant: 'acme', kept: wrapValues.name, live: addFlag.name },
        });
        // Nothing swapped: the live tenant as it was, the kept data still there, at its version.
        expect(await dumpTenant(core, tenantId)).toEqual(live);
        expect(await listAppliedMigrations(core.database.db, kept)).toEqual(
          nextMigrations.map((m) => m.name),
        );
        await backupsWith(latest).confirmInPlaceRestore('acme');
        const { rows } = await sql<{ n: number }>`
          select count(*)::int as n from pg_catalog.pg_namespace where nspname = ${kept}`.execute(
          core.database.db,
        );
        expect(rows[0]!.n).toBe(0);
      }, 120_000);
    },
  );
}
