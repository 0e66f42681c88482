import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/** The control plane: tenants, their wrapped keys, staff and their keys, setup tokens, leases. */
export const createControlPlane: Migration = {
  name: '20261122000000-create-control-plane',
  async up({ db }) {
    await db.schema
      .createTable('tenants')
      .addColumn('id', 'uuid', (c) => c.primaryKey())
      .addColumn('slug', 'text')
      .addColumn('name', 'text')
      .addColumn('status', 'text', (c) =>
        c.notNull().check(sql`status in ('active', 'suspended', 'deleted')`),
      )
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('deleted_at', 'timestamptz')
      .addColumn('schema_version', 'text')
      .addColumn('migration_status', 'text', (c) =>
        c.notNull().defaultTo('ok').check(sql`migration_status in ('ok', 'failed')`),
      )
      .addColumn('migration_error', 'text')
      .addColumn('migrated_at', 'timestamptz')
      .execute();
    // A slug is unique among live tenants; a deleted tenant keeps a tombstone row without one.
    await db.schema
      .createIndex('tenants_slug_live')
      .on('tenants')
      .column('slug')
      .unique()
      .where(sql.ref('deleted_at'), 'is', null)
      .execute();

    await db.schema
      .createTable('tenant_keys')
      .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('kek_id', 'text', (c) => c.notNull())
      .addColumn('wrapped', 'bytea', (c) => c.notNull())
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('rewrapped_at', 'timestamptz')
      .addPrimaryKeyConstraint('tenant_keys_pk', ['tenant_id', 'version'])
      .execute();
    await db.schema.createIndex('tenant_keys_kek').on('tenant_keys').column('kek_id').execute();

    // One sealed canary per master key: opening it at start-up proves the configured key is right.
    await db.schema
      .createTable('key_check')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('kek_id', 'text', (c) => c.notNull())
      .addColumn('sealed', 'bytea', (c) => c.notNull())
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .execute();

    await db.schema
      .createTable('staff')
      .addColumn('id', 'uuid', (c) => c.primaryKey())
      .addColumn('email', 'text', (c) => c.notNull().unique())
      .addColumn('display_name', 'text', (c) => c.notNull())
      .addColumn('role', 'text', (c) =>
        c.notNull().check(sql`role in ('operator', 'support', 'security', 'developer')`),
      )
      .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'disabled')`))
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .execute();

    await db.schema
      .createTable('staff_keys')
      .addColumn('id', 'uuid', (c) => c.primaryKey())
      .addColumn('staff_id', 'uuid', (c) => c.notNull().references('staff.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'bytea', (c) => c.notNull().unique())
      .addColumn('prefix', 'text', (c) => c.notNull())
      .addColumn('last4', 'text', (c) => c.notNull())
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('expires_at', 'timestamptz')
      .addColumn('revoked_at', 'timestamptz')
      .execute();

    await db.schema
      .createTable('setup_tokens')
      .addColumn('token_hash', 'bytea', (c) => c.primaryKey())
      .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id'))
      .addColumn('purpose', 'text', (c) => c.notNull().check(sql`purpose in ('owner_setup')`))
      .addColumn('email', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .addColumn('used_at', 'timestamptz')
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema.createIndex('setup_tokens_tenant').on('setup_tokens').column('tenant_id').execute();

    await db.schema
      .createTable('leases')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('holder', 'text', (c) => c.notNull())
      .addColumn('acquired_at', 'timestamptz', (c) => c.notNull())
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('migration_runs')
      .addColumn('id', 'uuid', (c) => c.primaryKey())
      .addColumn('holder', 'text', (c) => c.notNull())
      .addColumn('target', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) =>
        c.notNull().check(sql`status in ('running', 'succeeded', 'failed', 'aborted')`),
      )
      .addColumn('started_at', 'timestamptz', (c) => c.notNull())
      .addColumn('finished_at', 'timestamptz')
      .addColumn('tenants_total', 'integer', (c) => c.notNull())
      .addColumn('tenants_migrated', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('tenants_failed', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
  async down({ db }) {
    for (const table of [
      'migration_runs',
      'leases',
      'setup_tokens',
      'staff_keys',
      'staff',
      'key_check',
      'tenant_keys',
      'tenants',
    ]) {
      await db.schema.dropTable(table).execute();
    }
  },
};
