import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/** Per-user API keys: stored only as SHA-256, with the visible prefix and last 4 characters. */
export const createApiKeys: Migration = {
  name: '20261122030000-create-api-keys',
  async up({ db }) {
    await db.schema
      .createTable('api_keys')
      .addColumn('id', 'uuid', (c) => c.primaryKey())
      .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'bytea', (c) => c.notNull().unique())
      .addColumn('prefix', 'text', (c) => c.notNull())
      .addColumn('last4', 'text', (c) => c.notNull())
      .addColumn('access', 'text', (c) => c.notNull().check(sql`access in ('read', 'write')`))
      // Null: every project the user can reach; otherwise only these.
      .addColumn('project_ids', sql`uuid[]`)
      .addColumn('expires_at', 'timestamptz')
      .addColumn('revoked_at', 'timestamptz')
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema.createIndex('api_keys_user').on('api_keys').column('user_id').execute();
  },
  async down({ db }) {
    await db.schema.dropTable('api_keys').execute();
  },
};
