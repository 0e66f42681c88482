import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/**
 * Results of restore drills: one row per tenant drilled (which instant, from which locations, what
 * the scratch restores held, passed or failed and why). No tenant data: counts and checksums only.
 */
export const createBackupDrills: Migration = {
  name: '20261124000000-create-backup-drills',
  async up({ trx, schema }) {
    await sql`create table ${sql.id(schema, 'backup_drills')} (
      id uuid primary key,
      tenant_id uuid not null,
      restore_at timestamptz not null,
      locations text[] not null,
      started_at timestamptz not null,
      finished_at timestamptz not null,
      outcome text not null check (outcome in ('passed', 'failed')),
      tables jsonb not null,
      message text
    )`.execute(trx);
    await sql`create index backup_drills_by_time on ${sql.id(schema, 'backup_drills')} (started_at desc)`.execute(
      trx,
    );
  },
  async down({ trx, schema }) {
    await sql`drop table ${sql.id(schema, 'backup_drills')}`.execute(trx);
  },
};
