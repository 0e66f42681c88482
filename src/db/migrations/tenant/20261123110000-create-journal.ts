import { sql } from 'kysely';
import { attachJournalTriggers, createJournalCapture } from '../../journal.ts';
import type { Migration } from '../../migrator.ts';

/**
 * The change journal (db/journal.ts): `_journal` receives one entry per row change of every journaled
 * table, in the same transaction; `_backup_segments` remembers which entries were sealed into which
 * numbered segment and which backup locations already hold it (entries are deleted only once every
 * location holds their segment); `_backup_snapshots` lists the snapshots taken of the tenant.
 */
export const createJournal: Migration = {
  name: '20261123110000-create-journal',
  async up({ db, trx, schema }) {
    await db.schema
      .createTable('_journal')
      // Insertion order. For any one row, a later change always has a higher seq (row locks).
      .addColumn('seq', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
      // 64-bit transaction id: a restore skips exactly the transactions a snapshot already holds.
      .addColumn('txid', 'bigint', (c) => c.notNull())
      // The transaction's start time (now()): what "restore to T" compares with.
      .addColumn('at', 'timestamptz', (c) => c.notNull())
      .addColumn('table_name', 'text', (c) => c.notNull())
      .addColumn('op', 'text', (c) => c.notNull().check(sql`op in ('insert', 'update', 'delete')`))
      // Primary key of the row before the change (after it, for an insert).
      .addColumn('key', 'jsonb', (c) => c.notNull())
      // The whole row after the change; null for a delete.
      .addColumn('row', 'jsonb')
      // The segment it was sealed into; null while not yet sealed.
      .addColumn('segment_no', 'bigint')
      .execute();
    await db.schema
      .createIndex('_journal_unsealed')
      .on('_journal')
      .column('seq')
      .where(sql.ref('segment_no'), 'is', null)
      .execute();
    await db.schema.createIndex('_journal_by_segment').on('_journal').column('segment_no').execute();
    await db.schema
      .createTable('_backup_segments')
      .addColumn('segment_no', 'bigint', (c) => c.primaryKey())
      .addColumn('first_seq', 'bigint', (c) => c.notNull())
      .addColumn('last_seq', 'bigint', (c) => c.notNull())
      .addColumn('entry_count', 'integer', (c) => c.notNull())
      .addColumn('first_at', 'timestamptz', (c) => c.notNull())
      .addColumn('last_at', 'timestamptz', (c) => c.notNull())
      // The tenant schema version (newest applied migration) when the segment was sealed.
      .addColumn('schema_version', 'text', (c) => c.notNull())
      .addColumn('sealed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      // Names of the backup locations holding this segment (with its manifest).
      .addColumn('shipped_to', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
      // Set once every location held it and its entries left `_journal`.
      .addColumn('pruned_at', 'timestamptz')
      .execute();
    await db.schema
      .createTable('_backup_snapshots')
      .addColumn('snapshot_id', 'text', (c) => c.primaryKey())
      // The snapshot transaction's start (now()): it holds every transaction committed before it.
      .addColumn('taken_at', 'timestamptz', (c) => c.notNull())
      // Names of the backup locations holding the snapshot (with its manifest).
      .addColumn('stored_in', sql`text[]`, (c) => c.notNull())
      .addColumn('row_count', 'bigint', (c) => c.notNull())
      .execute();
    await createJournalCapture(trx, schema);
    await attachJournalTriggers(trx, schema);
  },
  async down({ db, trx, schema }) {
    // Dropping the function drops every trigger that calls it.
    await sql`drop function ${sql.id(schema, '_journal_capture')}() cascade`.execute(trx);
    await db.schema.dropTable('_backup_snapshots').execute();
    await db.schema.dropTable('_backup_segments').execute();
    await db.schema.dropTable('_journal').execute();
  },
};
