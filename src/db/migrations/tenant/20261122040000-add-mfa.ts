import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/**
 * TOTP second factor: the secret is stored encrypted with the tenant's data key (field format
 * `enc:v1:…`), the last accepted time step blocks replays, recovery codes are stored as SHA-256.
 * Expand-only: nullable columns and a new table.
 */
export const addMfa: Migration = {
  name: '20261122040000-add-mfa',
  async up({ db }) {
    await db.schema
      .alterTable('users')
      .addColumn('mfa_secret', 'text')
      .addColumn('mfa_enabled_at', 'timestamptz')
      .addColumn('mfa_last_step', 'bigint')
      .execute();
    await db.schema
      .createTable('mfa_recovery_codes')
      .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('code_hash', 'bytea', (c) => c.notNull())
      .addColumn('used_at', 'timestamptz')
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addPrimaryKeyConstraint('mfa_recovery_codes_pk', ['user_id', 'code_hash'])
      .execute();
  },
  async down({ db }) {
    await db.schema.dropTable('mfa_recovery_codes').execute();
    await db.schema
      .alterTable('users')
      .dropColumn('mfa_secret')
      .dropColumn('mfa_enabled_at')
      .dropColumn('mfa_last_step')
      .execute();
  },
};
