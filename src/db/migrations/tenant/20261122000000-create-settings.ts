import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/** Tenant-wide settings (key → JSON value). Later migrations add users, projects, records, audit. */
export const createSettings: Migration = {
  name: '20261122000000-create-settings',
  async up({ db }) {
    await db.schema
      .createTable('settings')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'jsonb', (c) => c.notNull())
      .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
  },
  async down({ db }) {
    await db.schema.dropTable('settings').execute();
  },
};
