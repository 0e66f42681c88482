import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/** Counters are spread over this many rows, so concurrent writers rarely wait for one another. */
export const usageCounterSlots = 16;

/**
 * What a tenant stores, counted as it changes: records, the bytes their data takes in the database,
 * and the bytes of attachment versions held in the object store (kept until purged, so a version
 * retired but still inside the restore window still counts). Triggers keep the counters in the same
 * transaction as the change, whichever code path made it (a project delete cascades to its records
 * and is counted too). Each change adds to one of 16 slot rows picked at random, so concurrent
 * writers seldom contend; a reader sums the slots.
 *
 * The counters are derived data: `recount` (usage.repository.ts) rebuilds them from the tables.
 */
export const createUsageCounters: Migration = {
  name: '20261123030000-create-usage-counters',
  async up({ db, trx, schema }) {
    await db.schema
      .createTable('usage_counters')
      .addColumn('slot', 'smallint', (c) =>
        c.primaryKey().check(sql`slot >= 0 and slot < ${sql.lit(usageCounterSlots)}`),
      )
      .addColumn('records', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('record_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('attachment_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
      .execute();
    const s = sql.id(schema);
    // Named with its schema inside the trigger bodies too: they must not depend on the search_path
    // of whoever changes the rows (a restore or a maintenance job may run without one).
    const table = sql.id(schema, 'usage_counters');
    // Slot 0 starts with what the tenant already stores; the others at zero.
    await sql`
      insert into ${table} (slot, records, record_bytes, attachment_bytes)
      select 0,
        (select count(*) from ${sql.id(schema, 'records')}),
        (select coalesce(sum(pg_column_size(data)), 0) from ${sql.id(schema, 'records')}),
        (select coalesce(sum(size_bytes), 0) from ${sql.id(schema, 'attachment_versions')} where purged_at is null)
      union all
      select g, 0, 0, 0 from generate_series(1, ${sql.lit(usageCounterSlots - 1)}) g`.execute(trx);

    await sql`
      create function ${s}.count_record_usage() returns trigger language plpgsql as $$
      declare
        -- Picked once: random() in the WHERE clause would be drawn again for every row it tests.
        pick smallint := floor(random() * ${sql.lit(usageCounterSlots)})::smallint;
        delta_records bigint := 0;
        delta_bytes bigint := 0;
      begin
        if tg_op = 'INSERT' then
          delta_records := 1;
          delta_bytes := pg_column_size(new.data);
        elsif tg_op = 'DELETE' then
          delta_records := -1;
          delta_bytes := -pg_column_size(old.data);
        else
          delta_bytes := pg_column_size(new.data) - pg_column_size(old.data);
          if delta_bytes = 0 then return null; end if;
        end if;
        update ${table} set records = records + delta_records, record_bytes = record_bytes + delta_bytes
          where slot = pick;
        return null;
      end $$`.execute(trx);
    await sql`
      create trigger count_record_usage after insert or delete or update of data on ${sql.id(schema, 'records')}
      for each row execute function ${s}.count_record_usage()`.execute(trx);

    await sql`
      create function ${s}.count_attachment_usage() returns trigger language plpgsql as $$
      declare
        pick smallint := floor(random() * ${sql.lit(usageCounterSlots)})::smallint;
        delta bigint := 0;
      begin
        if tg_op = 'INSERT' then
          delta := new.size_bytes;
        elsif tg_op = 'DELETE' then
          if old.purged_at is null then delta := -old.size_bytes; end if;
        elsif old.purged_at is null and new.purged_at is not null then
          delta := -old.size_bytes;
        end if;
        if delta <> 0 then
          update ${table} set attachment_bytes = attachment_bytes + delta
            where slot = pick;
        end if;
        return null;
      end $$`.execute(trx);
    await sql`
      create trigger count_attachment_usage after insert or delete or update of purged_at on ${sql.id(schema, 'attachment_versions')}
      for each row execute function ${s}.count_attachment_usage()`.execute(trx);
  },
  async down({ db, trx, schema }) {
    await sql`drop trigger count_attachment_usage on ${sql.id(schema, 'attachment_versions')}`.execute(trx);
    await sql`drop function ${sql.id(schema)}.count_attachment_usage()`.execute(trx);
    await sql`drop trigger count_record_usage on ${sql.id(schema, 'records')}`.execute(trx);
    await sql`drop function ${sql.id(schema)}.count_record_usage()`.execute(trx);
    await db.schema.dropTable('usage_counters').execute();
  },
};
