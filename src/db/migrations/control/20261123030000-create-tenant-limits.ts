import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/**
 * Per-tenant limits set by operators (a null column means the platform default from the config), and
 * API calls per tenant per UTC day, which every node adds its counts to every few seconds.
 */
export const createTenantLimits: Migration = {
  name: '20261123030000-create-tenant-limits',
  async up({ trx, schema }) {
    const tenants = sql.id(schema, 'tenants');
    await sql`create table ${sql.id(schema, 'tenant_limits')} (
      tenant_id uuid primary key references ${tenants} (id) on delete cascade,
      requests_per_second integer check (requests_per_second between 1 and 1000000),
      concurrent_requests integer check (concurrent_requests between 1 and 100000),
      max_records bigint check (max_records >= 0),
      max_storage_bytes bigint check (max_storage_bytes >= 0),
      updated_at timestamptz not null default now(),
      updated_by uuid
    )`.execute(trx);
    await sql`create table ${sql.id(schema, 'tenant_api_calls')} (
      tenant_id uuid not null references ${tenants} (id) on delete cascade,
      day date not null,
      calls bigint not null check (calls >= 0),
      primary key (tenant_id, day)
    )`.execute(trx);
  },
  async down({ trx, schema }) {
    await sql`drop table ${sql.id(schema, 'tenant_api_calls')}`.execute(trx);
    await sql`drop table ${sql.id(schema, 'tenant_limits')}`.execute(trx);
  },
};
