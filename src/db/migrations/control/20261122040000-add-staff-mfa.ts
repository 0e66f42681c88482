import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/**
 * Staff MFA (expand-only): each person's TOTP secret, wrapped by the master key; the last accepted
 * time step (replay guard); when enrolment was confirmed; and a one-time setup token (SHA-256) with
 * its expiry, which is how a person enrols and receives their first key.
 */
export const addStaffMfa: Migration = {
  name: '20261122040000-add-staff-mfa',
  async up({ trx, schema }) {
    const staff = sql.id(schema, 'staff');
    await sql`alter table ${staff}
      add column mfa_secret bytea,
      add column mfa_kek_id text,
      add column mfa_enabled_at timestamptz,
      add column mfa_last_step bigint,
      add column setup_token_hash bytea unique,
      add column setup_expires_at timestamptz`.execute(trx);
  },
  async down({ trx, schema }) {
    const staff = sql.id(schema, 'staff');
    await sql`alter table ${staff}
      drop column mfa_secret,
      drop column mfa_kek_id,
      drop column mfa_enabled_at,
      drop column mfa_last_step,
      drop column setup_token_hash,
      drop column setup_expires_at`.execute(trx);
  },
};
