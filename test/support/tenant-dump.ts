import { sql } from 'kysely';
import { isJournaledTable } from '../../src/db/journal.ts';
import { tenantSchemaName } from '../../src/db/tenant-schema.ts';
import type { Core } from '../../src/main/compose.ts';

/**
 * Every journaled table of a tenant, rows as JSON sorted by their text: what "equal state" means for
 * a restore (sessions, audit and derived tables are not restored, so they are not compared).
 */
export async function dumpTenant(core: Core, tenantId: string): Promise<Record<string, string[]>> {
  const schema = tenantSchemaName(tenantId);
  const { rows: tables } = await sql<{ name: string }>`
    select table_name as name from information_schema.tables
    where table_schema = ${schema} and table_type = 'BASE TABLE' order by table_name`.execute(
    core.database.db,
  );
  const dump: Record<string, string[]> = {};
  for (const { name } of tables.filter((t) => isJournaledTable(t.name))) {
    const { rows } = await sql<{
      row: unknown;
    }>`select to_jsonb(t) as row from ${sql.id(schema, name)} t`.execute(core.database.db);
    dump[name] = rows.map((r) => JSON.stringify(r.row)).sort();
  }
  return dump;
}
