import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/**
 * Records: JSON documents of a project, grouped by collection, with a version for optimistic
 * concurrency; and the durable side of create idempotency (a retried create with the same
 * `Idempotency-Key` returns the first result).
 */
export const createRecords: Migration = {
  name: '20261122050000-create-records',
  async up({ db }) {
    await db.schema
      .createTable('records')
      .addColumn('id', 'uuid', (c) => c.primaryKey())
      // Creation order, exact and unique: what listings sort and resume by.
      .addColumn('seq', 'bigint', (c) => c.notNull().generatedAlwaysAsIdentity())
      .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
      .addColumn('collection', 'text', (c) => c.notNull().check(sql`collection ~ '^[a-z][a-z0-9_]{0,62}$'`))
      .addColumn('data', 'jsonb', (c) => c.notNull().check(sql`jsonb_typeof(data) = 'object'`))
      .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1).check(sql`version >= 1`))
      .addColumn('created_by', 'uuid', (c) => c.notNull().references('users.id'))
      .addColumn('updated_by', 'uuid', (c) => c.notNull().references('users.id'))
      // Milliseconds, as JavaScript reads them back, so a listing cursor names a row exactly.
      .addColumn('created_at', 'timestamptz', (c) =>
        c.notNull().defaultTo(sql`date_trunc('milliseconds', now())`),
      )
      .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    // Listing walks (project, collection?, created_at, id) with a keyset cursor.
    await db.schema
      .createIndex('records_by_collection')
      .on('records')
      .columns(['project_id', 'collection', 'created_at', 'id'])
      .execute();
    await db.schema
      .createIndex('records_by_project')
      .on('records')
      .columns(['project_id', 'created_at', 'id'])
      .execute();
    await db.schema
      .createTable('record_idempotency')
      .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
      .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
      .addColumn('key', 'text', (c) => c.notNull())
      .addColumn('request_hash', 'bytea', (c) => c.notNull())
      .addColumn('record_id', 'uuid', (c) => c.notNull())
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addPrimaryKeyConstraint('record_idempotency_pk', ['project_id', 'user_id', 'key'])
      .execute();
  },
  async down({ db }) {
    await db.schema.dropTable('record_idempotency').execute();
    await db.schema.dropTable('records').execute();
  },
};
