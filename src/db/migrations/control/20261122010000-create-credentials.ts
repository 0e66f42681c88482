import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/**
 * The credentials index: which tenant a session token (by its SHA-256) belongs to, so a request
 * carrying only a token finds its tenant without scanning schemas. The session itself lives in the
 * tenant's schema.
 */
export const createCredentials: Migration = {
  name: '20261122010000-create-credentials',
  async up({ db }) {
    await db.schema
      .createTable('credentials')
      .addColumn('token_hash', 'bytea', (c) => c.primaryKey())
      .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('session')`))
      .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema.createIndex('credentials_tenant').on('credentials').column('tenant_id').execute();
  },
  async down({ db }) {
    await db.schema.dropTable('credentials').execute();
  },
};
