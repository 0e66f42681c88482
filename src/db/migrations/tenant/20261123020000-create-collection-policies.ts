import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/**
 * Collection policies: per project and collection, which top-level record fields are `sensitive`
 * (stored encrypted with the tenant key) and which are `personal` (for the anonymizer and GDPR export).
 * Every change is a new row with the next version; the current policy is the highest version, and the
 * older rows are its history (who changed it, when).
 */
export const createCollectionPolicies: Migration = {
  name: '20261123020000-create-collection-policies',
  async up({ db }) {
    await db.schema
      .createTable('collection_policies')
      .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
      .addColumn('collection', 'text', (c) => c.notNull().check(sql`collection ~ '^[a-z][a-z0-9_]{0,62}$'`))
      .addColumn('version', 'integer', (c) => c.notNull().check(sql`version >= 1`))
      .addColumn('sensitive', sql`text[]`, (c) => c.notNull())
      .addColumn('personal', sql`text[]`, (c) => c.notNull())
      .addColumn('created_by', 'uuid', (c) => c.notNull().references('users.id'))
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      // Also the index that finds the current policy: the last entry for (project, collection).
      .addPrimaryKeyConstraint('collection_policies_pk', ['project_id', 'collection', 'version'])
      .execute();
  },
  async down({ db }) {
    await db.schema.dropTable('collection_policies').execute();
  },
};
