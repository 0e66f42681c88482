import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import type { Core } from '../main/compose.ts';
import { newId } from '../platform/ids.ts';
import { isJournaledTable, journalTriggerName } from './journal.ts';
import { tenantSchemaName } from './tenant-schema.ts';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`change journal on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let tenantId: string;

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      const { tenant } = await core.tenants.create({
        slug: 'journal-a',
        name: 'Journal A',
        ownerEmail: 'o@journal.test',
      });
      tenantId = tenant.id;
    });
    afterAll(async () => testDb?.close());

    it('puts the trigger on every tenant table except bookkeeping, sessions and audit', async () => {
      const schema = tenantSchemaName(tenantId);
      const { rows } = await sql<{ table: string; has_trigger: boolean }>`
        select c.relname as table, exists (select 1 from pg_catalog.pg_trigger t
          where t.tgrelid = c.oid and t.tgname = ${journalTriggerName}) as has_trigger
        from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = ${schema} and c.relkind = 'r' order by c.relname`.execute(core.database.db);
      expect(rows.length).toBeGreaterThan(10);
      for (const row of rows)
        expect([row.table, row.has_trigger]).toEqual([row.table, isJournaledTable(row.table)]);
      expect(rows.find((r) => r.table === 'records')?.has_trigger).toBe(true);
      expect(rows.find((r) => r.table === 'sessions')?.has_trigger).toBe(false);
      expect(rows.find((r) => r.table === '_journal')?.has_trigger).toBe(false);
    });

    it('leaves audit tables out: what happened must never roll back', () => {
      expect(isJournaledTable('audit_log')).toBe(false);
      expect(isJournaledTable('audit_checkpoints')).toBe(false);
      expect(isJournaledTable('records')).toBe(true);
    });

    it('records inserts, updates and deletes with the row, in the same transaction as the change', async () => {
      const userId = newId();
      await core.withTenant(tenantId, async ({ db }) => {
        await db
          .insertInto('users')
          .values({
            id: userId,
            email: 'j@journal.test',
            display_name: 'J',
            status: 'active',
            role: 'member',
          })
          .execute();
        await db.updateTable('users').set({ display_name: 'Jay' }).where('id', '=', userId).execute();
      });
      // A rolled-back change leaves no entry behind.
      await expect(
        core.withTenant(tenantId, async ({ db }) => {
          await db.deleteFrom('users').where('id', '=', userId).execute();
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      await core.withTenant(tenantId, async ({ db }) => {
        await db
          .insertInto('settings')
          .values({ key: 'theme', value: JSON.stringify('dark') })
          .execute();
        await db.deleteFrom('settings').where('key', '=', 'theme').execute();
      });
      const entries = await core.withTenant(tenantId, ({ trx, schema }) =>
        sql<{
          table_name: string;
          op: string;
          key: unknown;
          row: Record<string, unknown> | null;
          txid: string;
        }>`
          select table_name, op, key, row, txid::text from ${sql.id(schema, '_journal')} order by seq`
          .execute(trx)
          .then((r) => r.rows),
      );
      const mine = entries.filter((e) => e.table_name !== 'users' || (e.key as { id: string }).id === userId);
      expect(mine.map((e) => [e.table_name, e.op, e.key])).toEqual([
        ['users', 'insert', { id: userId }],
        ['users', 'update', { id: userId }],
        ['settings', 'insert', { key: 'theme' }],
        ['settings', 'delete', { key: 'theme' }],
      ]);
      expect(mine[1]?.row?.display_name).toBe('Jay');
      expect(mine[3]?.row).toBeNull();
      expect(mine[0]?.txid).toBe(mine[1]?.txid);
      expect(mine[2]?.txid).not.toBe(mine[0]?.txid);
    });
  });
}
