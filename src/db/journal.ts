import { sql } from 'kysely';
import type { AnyKysely } from './database.ts';
import { assertTenantSchemaName } from './tenant-schema.ts';

/**
 * The change journal: every row change of a tenant table is appended to the tenant's `_journal` in
 * the same transaction, by an AFTER ROW trigger (`_journal`) that calls `_journal_capture(<primary
 * key columns>)`. The shipper drains the journal into encrypted segments (modules/backups); a
 * point-in-time restore replays them after a snapshot.
 *
 * Which tables are journaled is decided here, once, for every tenant: every base table of the tenant
 * schema except
 * - tables whose name starts with `_` (bookkeeping: `_migrations`, `_journal`, `_backup_segments`);
 * - `sessions`: sign-ins are credentials, not data. Rolling them back would revive sessions that were
 *   revoked; a restored tenant starts with everyone signed out. (Their `last_seen_at` also changes
 *   on every request, which would flood the journal.)
 * - `audit_log` and any other `audit_*` table: the audit trail records what happened, including the
 *   restore itself; it must never roll back with the data.
 * - `usage_counters`: derived data. Its triggers count the rows a restore loads into the new schema,
 *   so it comes back right without being journaled (which would double every record write's entries).
 * A table added by a later migration gets its trigger from `attachJournalTriggers`, which the tenant
 * migrator runs after every batch of tenant migrations (tenant-schemas.ts).
 *
 * Migrations are in the journal too: before each tenant migration the migrator appends a marker, an
 * `insert` into `_migrations` (`journalMigration`), in the migration's transaction. It comes before
 * the row changes the migration itself makes (a lower seq), so a restore replaying the journal
 * applies the migration at that point, then the migration's own changes, then what followed.
 */
export const unjournaledTables: readonly string[] = ['sessions', 'audit_log', 'usage_counters'];

export function isJournaledTable(table: string): boolean {
  return !table.startsWith('_') && !table.startsWith('audit_') && !unjournaledTables.includes(table);
}

export const journalTriggerName = '_journal';

/**
 * Creates the capture function of one tenant schema. The schema name is baked into the function (it
 * is `t_<32 hex>`, checked again here), so the insert never depends on the caller's search_path.
 * The function runs as the caller (the tenant's role inside `withTenant`), which may insert into its
 * own `_journal`. `now()` is the transaction's start: all entries of a transaction share one `at`,
 * and a restore to T applies the transactions that started at or before T.
 */
export async function createJournalCapture(trx: AnyKysely, schema: string): Promise<void> {
  assertTenantSchemaName(schema);
  const journal = `${schema}._journal`;
  await sql
    .raw(`create function ${schema}._journal_capture() returns trigger language plpgsql as $fn$
declare
  source jsonb;
  key jsonb;
begin
  if TG_OP = 'INSERT' then source := to_jsonb(NEW); else source := to_jsonb(OLD); end if;
  select jsonb_object_agg(c, source -> c) into key from unnest(TG_ARGV) as c;
  insert into ${journal} (txid, at, table_name, op, key, row)
  values (txid_current(), now(), TG_TABLE_NAME, lower(TG_OP), key,
          case when TG_OP = 'DELETE' then null else to_jsonb(NEW) end);
  return null;
end
$fn$`)
    .execute(trx);
}

/**
 * Gives every journaled table of `schema` that lacks it the journal trigger, with its primary key
 * columns as arguments (every tenant table has a primary key; one without is refused, since its rows
 * could not be replayed by key). Idempotent; returns the tables it attached to.
 */
export async function attachJournalTriggers(trx: AnyKysely, schema: string): Promise<string[]> {
  assertTenantSchemaName(schema);
  const { rows: hasJournal } = await sql<{ exists: boolean }>`
    select to_regclass(${`${schema}._journal`}) is not null as exists`.execute(trx);
  if (!hasJournal[0]?.exists) return [];
  const { rows } = await sql<{ table: string; keys: string[] | null; has_trigger: boolean }>`
    select c.relname as table,
      (select array_agg(a.attname::text order by array_position(i.indkey::int2[], a.attnum))
         from pg_catalog.pg_index i
         join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum = any(i.indkey::int2[])
        where i.indrelid = c.oid and i.indisprimary) as keys,
      exists (select 1 from pg_catalog.pg_trigger t
               where t.tgrelid = c.oid and t.tgname = ${journalTriggerName}) as has_trigger
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${schema} and c.relkind = 'r'
    order by c.relname`.execute(trx);
  const attached: string[] = [];
  for (const row of rows) {
    if (!isJournaledTable(row.table) || row.has_trigger) continue;
    if (!row.keys || row.keys.length === 0) {
      throw new Error(`tenant table ${row.table} has no primary key: the change journal cannot replay it`);
    }
    const args = row.keys.map((k) => `'${k.replaceAll("'", "''")}'`).join(', ');
    await sql`create trigger ${sql.id(journalTriggerName)} after insert or update or delete on ${sql.id(schema, row.table)}
      for each row execute function ${sql.id(schema, '_journal_capture')}(${sql.raw(args)})`.execute(trx);
    attached.push(row.table);
  }
  return attached;
}

/** The table name of a migration marker in the journal: the marker records a row of `_migrations`. */
export const migrationMarkerTable = '_migrations';

/**
 * Appends a migration's marker to the tenant's journal (see above); nothing when the schema has no
 * journal yet (the migrations before the journal's own). Runs as the migrator, not the tenant role.
 */
export async function journalMigration(trx: AnyKysely, schema: string, name: string): Promise<void> {
  assertTenantSchemaName(schema);
  const { rows } = await sql<{ exists: boolean }>`
    select to_regclass(${`${schema}._journal`}) is not null as exists`.execute(trx);
  if (!rows[0]?.exists) return;
  const marker = JSON.stringify({ name });
  await sql`insert into ${sql.id(schema, '_journal')} (txid, at, table_name, op, key, row)
    values (txid_current(), now(), ${migrationMarkerTable}, 'insert', ${marker}::jsonb, ${marker}::jsonb)`.execute(
    trx,
  );
}
