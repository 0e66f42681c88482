import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dollarQuoted } from '../src/db/with-tenant.ts';
import type { Core } from '../src/main/compose.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from './support/databases.ts';

/**
 * The isolation promise at the database layer: code running inside tenant A's `withTenant` cannot
 * read or write tenant B's tables, not even with raw SQL naming B's schema, and code with no tenant
 * context runs no tenant query at all.
 */
for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`tenant isolation on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let a: { id: string; schema: string };
    let b: { id: string; schema: string };

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      const ta = await core.tenants.create({ slug: 'tenant-a', name: 'A', ownerEmail: 'owner@a.test' });
      const tb = await core.tenants.create({ slug: 'tenant-b', name: 'B', ownerEmail: 'owner@b.test' });
      a = { id: ta.tenant.id, schema: `t_${ta.tenant.id.replaceAll('-', '')}` };
      b = { id: tb.tenant.id, schema: `t_${tb.tenant.id.replaceAll('-', '')}` };
      await core.withTenant(b.id, (scope) =>
        scope.db
          .insertInto('settings')
          .values({ key: 'secret', value: JSON.stringify({ of: 'b' }) })
          .execute(),
      );
    });
    afterAll(async () => testDb?.close());

    it('runs tenant code in its own schema, with its own role', async () => {
      const seen = await core.withTenant(a.id, async (scope) => {
        await scope.db
          .insertInto('settings')
          .values({ key: 'mine', value: JSON.stringify(1) })
          .execute();
        const rows = await scope.db.selectFrom('settings').select('key').execute();
        const who = await sql<{
          role: string;
          path: string;
        }>`select current_user as role, current_setting('search_path') as path`.execute(scope.trx);
        return { keys: rows.map((r) => r.key), ...who.rows[0] };
      });
      expect(seen.keys).toEqual(['mine']);
      expect(seen.path).toBe(a.schema);
      expect(testDb.database.rolesEnabled).toBe(true);
      expect(seen.role).toBe(a.schema);
    });

    it("refuses raw SQL that names another tenant's schema (the role fence)", async () => {
      for (const statement of [
        sql`select * from ${sql.id(b.schema, 'settings')}`,
        sql`insert into ${sql.id(b.schema, 'settings')} (key, value) values ('x', '1')`,
        sql`update ${sql.id(b.schema, 'settings')} set value = '2'`,
        sql`delete from ${sql.id(b.schema, 'settings')}`,
        sql`drop table ${sql.id(b.schema, 'settings')}`,
        sql`select * from control.tenants`,
        sql`select * from control.tenant_keys`,
      ]) {
        await expect(core.withTenant(a.id, (scope) => statement.execute(scope.trx))).rejects.toMatchObject({
          code: '42501', // insufficient_privilege
        });
      }
      const untouched = await core.withTenant(b.id, (scope) =>
        scope.db.selectFrom('settings').selectAll().execute(),
      );
      expect(untouched.map((r) => r.key)).toEqual(['secret']);
    });

    it('cannot change its own tables shape or migration history', async () => {
      await expect(
        core.withTenant(a.id, (scope) => sql`alter table settings add column evil text`.execute(scope.trx)),
      ).rejects.toMatchObject({ code: '42501' });
      await expect(
        core.withTenant(a.id, (scope) => sql`delete from _migrations`.execute(scope.trx)),
      ).rejects.toMatchObject({ code: '42501' });
    });

    it('fails closed without a tenant context', async () => {
      await expect(core.withTenant(undefined, async () => 'ran')).rejects.toMatchObject({
        code: 'tenant_context_missing',
      });
      await expect(core.withTenant('', async () => 'ran')).rejects.toMatchObject({
        code: 'tenant_context_missing',
      });
      // The root connection's search_path holds only pg_catalog: an unqualified tenant table is not found.
      await expect(sql`select * from settings`.execute(testDb.database.db)).rejects.toMatchObject({
        code: '42P01',
      });
    });

    it('undoes everything when the work fails, and hands back a connection with none of the tenant settings', async () => {
      await expect(
        core.withTenant(a.id, async (scope) => {
          await scope.db
            .insertInto('settings')
            .values({ key: 'half-written', value: JSON.stringify(1) })
            .execute();
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      const keys = await core.withTenant(a.id, (scope) =>
        scope.db.selectFrom('settings').select('key').execute(),
      );
      expect(keys.map((r) => r.key)).not.toContain('half-written');
      // Every pooled connection is back to the root role and pg_catalog-only search path.
      const seen = await Promise.all(
        Array.from({ length: 12 }, () =>
          sql<{
            role: string;
            path: string;
          }>`select current_user as role, current_setting('search_path') as path`
            .execute(testDb.database.db)
            .then((r) => r.rows[0]!),
        ),
      );
      for (const row of seen) {
        expect(row.role).not.toMatch(/^t_/);
        expect(row.path).not.toContain('t_');
      }
    });

    it('runs a final statement in the transaction, just before the commit, with any literal intact', async () => {
      const hostile = `it's $$ \\ $q0011aabbccdd$ ${'$'}{x} \u2028 "quoted" -- ; commit; drop table settings;`;
      let reported: readonly unknown[] = [];
      await core.withTenant(
        a.id,
        (scope) => scope.db.insertInto('settings').values({ key: 'final-1', value: '1' }).execute(),
        {
          finalStatement: (scope) => ({
            text: `insert into ${scope.schema}.settings (key, value)
              select 'final-2', to_jsonb(${dollarQuoted(hostile)}::text) returning key`,
            onRows: (rows) => {
              reported = rows;
            },
          }),
        },
      );
      expect(reported).toEqual([{ key: 'final-2' }]);
      const stored = await core.withTenant(a.id, (scope) =>
        scope.db
          .selectFrom('settings')
          .select(['key', 'value'])
          .where('key', 'like', 'final-%')
          .orderBy('key')
          .execute(),
      );
      expect(stored).toEqual([
        { key: 'final-1', value: 1 },
        { key: 'final-2', value: hostile },
      ]);
    });

    it('quotes any text as a literal that ends where it should', async () => {
      const values = [
        '',
        '$',
        '$q',
        '$q$',
        'x$q',
        'x$q1',
        '$q$q1$q2$',
        "'; drop table settings; --",
        '\\',
        '$$',
      ];
      const back = await core.withTenant(a.id, async (scope) => {
        const seen: string[] = [];
        for (const value of values) {
          const { rows } = await sql
            .raw<{ v: string }>(`select ${dollarQuoted(value)}::text as v`)
            .execute(scope.trx);
          seen.push(rows[0]!.v);
        }
        return seen;
      });
      expect(back).toEqual(values);
      expect(() => dollarQuoted('a\0b')).toThrow(/NUL/);
    });

    it('undoes the work when the final statement fails, and keeps serving', async () => {
      let reported = false;
      await expect(
        core.withTenant(
          a.id,
          (scope) => scope.db.insertInto('settings').values({ key: 'final-undone', value: '1' }).execute(),
          {
            finalStatement: (scope) => ({
              text: `insert into ${scope.schema}.settings (key, value) values ('final-undone', '2')`,
              onRows: () => {
                reported = true;
              },
            }),
          },
        ),
      ).rejects.toMatchObject({ code: '23505' });
      expect(reported).toBe(false);
      for (let i = 0; i < 3; i++) {
        const left = await core.withTenant(a.id, (scope) =>
          scope.db.selectFrom('settings').select('key').where('key', '=', 'final-undone').execute(),
        );
        expect(left).toEqual([]);
      }
    });

    it('refuses writes in a read-only scope', async () => {
      await expect(
        core.withTenant(
          a.id,
          (scope) =>
            scope.db
              .insertInto('settings')
              .values({ key: 'ro', value: JSON.stringify(1) })
              .execute(),
          { readOnly: true },
        ),
      ).rejects.toMatchObject({ code: '25006' }); // read_only_sql_transaction
    });

    it('answers tenant_not_found once the tenant is gone', async () => {
      const gone = await core.tenants.create({ slug: 'tenant-gone', name: 'G', ownerEmail: 'o@g.test' });
      const readGone = () =>
        core.withTenant(gone.tenant.id, (scope) => scope.db.selectFrom('settings').select('key').execute(), {
          readOnly: true,
        });
      // Read first, so a pooled read connection holds the tenant's role when it is dropped.
      expect(await readGone()).toEqual([]);
      await core.tenants.delete(gone.tenant.id, 'tenant-gone');
      await expect(core.withTenant(gone.tenant.id, async () => 'ran')).rejects.toMatchObject({
        code: 'tenant_not_found',
      });
      await expect(readGone()).rejects.toMatchObject({ code: 'tenant_not_found' });
      const stillServes = await core.withTenant(
        b.id,
        (scope) => scope.db.selectFrom('settings').select('key').execute(),
        {
          readOnly: true,
        },
      );
      expect(stillServes.map((r) => r.key)).toEqual(['secret']);
    });

    it('keeps read-only scopes in their tenant too, however reads of several tenants interleave', async () => {
      await expect(
        core.withTenant(
          a.id,
          (scope) => sql`select * from ${sql.id(b.schema, 'settings')}`.execute(scope.trx),
          {
            readOnly: true,
          },
        ),
      ).rejects.toMatchObject({ code: '42501' });
      const reads = await Promise.all(
        Array.from({ length: 60 }, (_, i) => {
          const tenant = i % 3 === 0 ? b : a;
          return core
            .withTenant(tenant.id, (scope) => scope.db.selectFrom('settings').select('key').execute(), {
              readOnly: true,
            })
            .then((rows) => ({ tenant, keys: rows.map((r) => r.key) }));
        }),
      );
      for (const { tenant, keys } of reads) {
        if (tenant === b) expect(keys).toEqual(['secret']);
        else expect(keys).not.toContain('secret');
      }
    });

    it('runs no statement on the tenant read pool outside a tenant (Postgres server only; the embedded database has none)', async () => {
      const reads = testDb.database.tenantReads;
      if (kind.name === 'pglite') {
        expect(reads).toBeUndefined();
        return;
      }
      await expect(sql`select 1`.execute(reads!.db)).rejects.toThrow('a tenant read ran outside its tenant');
      await expect(
        reads!.run(a.schema, () =>
          sql`insert into settings (key, value) values ('w', '1')`.execute(reads!.db),
        ),
      ).rejects.toMatchObject({ code: '25006' });
    });

    it('rejects a tenant id that is not a UUID before touching the database', async () => {
      for (const hostile of ['../x', 'public', 'pg_catalog', "a'; drop schema control; --", 'a\u0000b']) {
        await expect(core.withTenant(hostile, async () => 'ran')).rejects.toThrow(/tenant id must be/);
      }
    });
  });
}
