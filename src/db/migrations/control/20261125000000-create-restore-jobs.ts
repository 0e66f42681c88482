import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/**
 * Restores requested through the API, run in the background: one row per request (who asked, for
 * which tenant and instant, into which slug), its status and progress, and its outcome (the new
 * tenant, or a stable error code). A pending job reserves its slug: no two pending jobs restore into
 * the same one. No tenant data: ids, slugs, counts.
 */
export const createRestoreJobs: Migration = {
  name: '20261125000000-create-restore-jobs',
  async up({ trx, schema }) {
    const table = sql.id(schema, 'restore_jobs');
    await sql`create table ${table} (
      id uuid primary key,
      tenant_id uuid not null,
      origin text not null check (origin in ('tenant', 'operator')),
      requested_by_kind text not null check (requested_by_kind in ('user', 'staff')),
      requested_by_id text not null,
      request_id text,
      restore_at timestamptz not null,
      into_slug text not null,
      into_name text,
      from_location text,
      status text not null check (status in ('queued', 'running', 'succeeded', 'failed')),
      phase text not null,
      progress_done bigint not null default 0,
      progress_total bigint not null default 0,
      holder text,
      created_at timestamptz not null,
      started_at timestamptz,
      progress_at timestamptz,
      finished_at timestamptz,
      result jsonb,
      error_code text,
      error_message text
    )`.execute(trx);
    await sql`create index restore_jobs_by_tenant on ${table} (tenant_id, created_at desc)`.execute(trx);
    await sql`create index restore_jobs_pending on ${table} (created_at) where status in ('queued', 'running')`.execute(
      trx,
    );
    await sql`create unique index restore_jobs_pending_slug on ${table} (into_slug) where status in ('queued', 'running')`.execute(
      trx,
    );
  },
  async down({ trx, schema }) {
    await sql`drop table ${sql.id(schema, 'restore_jobs')}`.execute(trx);
  },
};
