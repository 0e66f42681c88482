import { sql } from 'kysely';
import type { AnyKysely } from '../database.ts';

/**
 * The DDL of an audit chain (`audit_log` + `audit_checkpoints`), shared by the tenant migration (one
 * chain per tenant schema) and the control migration (the platform chain). Kept beside the
 * migrations, not in a module: it is part of them and must not change once shipped.
 *
 * Append-only is enforced twice: the tenant role gets no UPDATE/DELETE/TRUNCATE on these tables
 * (`tenant-schemas.ts`), and a trigger refuses UPDATE and TRUNCATE for everyone and DELETE unless
 * the transaction names, in `strongroom.audit_prune_through`, a checkpointed position the row is at
 * or before. Only retention pruning sets it, on the owner connection (the tenant role has no DELETE
 * privilege at all). A superuser can still disable triggers; that
 * is what the signed checkpoints copied to the object store are for.
 */
export async function createAuditChain(trx: AnyKysely, schema: string, options: { platform: boolean }) {
  const log = sql.id(schema, 'audit_log');
  const checkpoints = sql.id(schema, 'audit_checkpoints');
  const guard = sql.id(schema, 'audit_guard');
  const hex = (column: string) => sql.raw(`${column} text not null check (${column} ~ '^[0-9a-f]{64}$')`);
  await sql`create table ${log} (
    position bigint primary key check (position >= 1),
    at timestamptz not null,
    ${options.platform ? sql`tenant_id uuid,` : sql``}
    actor_kind text not null check (actor_kind in ('user', 'api_key', 'staff', 'anonymous', 'system')),
    actor_id text check (length(actor_id) <= 200),
    api_key_id uuid,
    grant_id uuid,
    action text not null check (length(action) between 1 and 100),
    resource_type text check (length(resource_type) <= 100),
    resource_id text check (length(resource_id) <= 200),
    outcome text not null check (outcome in ('allow', 'deny', 'error')),
    status_code integer,
    error_code text check (length(error_code) <= 100),
    request_id text check (length(request_id) <= 100),
    ip text check (length(ip) <= 100),
    user_agent text check (length(user_agent) <= 500),
    changes text[],
    ${hex('prev_hash')},
    ${hex('hash')}
  )`.execute(trx);
  await sql`create index ${sql.id('audit_log_at')} on ${log} (at)`.execute(trx);
  await sql`create index ${sql.id('audit_log_actor')} on ${log} (actor_id, position)`.execute(trx);
  await sql`create index ${sql.id('audit_log_action')} on ${log} (action, position)`.execute(trx);
  // What a support grant did: few entries among many, so a partial index.
  await sql`create index ${sql.id('audit_log_grant')} on ${log} (grant_id, position) where grant_id is not null`.execute(
    trx,
  );
  if (!options.platform) {
    // A write's entry commits here, in the write's own transaction, without waiting for the chain;
    // the batch writer moves pending entries into the chain in order (see AuditService.sealPending).
    // The same limits as the chain's columns, so an entry that could not be chained fails with its
    // write instead of blocking the chain later.
    await sql`create table ${sql.id(schema, 'audit_pending')} (
      id bigint generated always as identity primary key,
      entry jsonb not null check (
        entry ->> 'actorKind' in ('user', 'api_key', 'staff', 'anonymous', 'system')
        and length(entry ->> 'action') between 1 and 100
        and entry ->> 'outcome' in ('allow', 'deny', 'error')
        and coalesce(length(entry ->> 'actorId'), 0) <= 200
        and coalesce(length(entry ->> 'resourceType'), 0) <= 100
        and coalesce(length(entry ->> 'resourceId'), 0) <= 200
        and coalesce(length(entry ->> 'errorCode'), 0) <= 100
        and coalesce(length(entry ->> 'requestId'), 0) <= 100
        and coalesce(length(entry ->> 'ip'), 0) <= 100
        and coalesce(length(entry ->> 'userAgent'), 0) <= 500
      )
    )`.execute(trx);
  }
  await sql`create table ${checkpoints} (
    position bigint primary key check (position >= 1),
    ${hex('head_hash')},
    at timestamptz not null,
    key_id text not null,
    signature text not null
  )`.execute(trx);
  // The one way to delete: retention pruning names, in `strongroom.audit_prune_through`, a position
  // sealed by a checkpoint, and only rows at or before it go (a whole sealed segment, never the tail).
  await sql`create function ${guard}() returns trigger language plpgsql as $$
    declare
      through bigint := nullif(current_setting('strongroom.audit_prune_through', true), '')::bigint;
      sealed boolean;
    begin
      if tg_op = 'DELETE' and tg_table_name = 'audit_log' and through is not null and old.position <= through then
        execute format('select exists (select 1 from %I.audit_checkpoints where position = $1)', tg_table_schema)
          into sealed using through;
        if sealed then
          return old;
        end if;
      end if;
      raise exception 'audit tables are append-only (% on %)', tg_op, tg_table_name
        using errcode = 'insufficient_privilege';
    end $$`.execute(trx);
  for (const table of [log, checkpoints]) {
    await sql`create trigger audit_append_only before update or delete on ${table}
      for each row execute function ${guard}()`.execute(trx);
    await sql`create trigger audit_no_truncate before truncate on ${table}
      for each statement execute function ${guard}()`.execute(trx);
  }
}

export async function dropAuditChain(trx: AnyKysely, schema: string) {
  await sql`drop table if exists ${sql.id(schema, 'audit_pending')}`.execute(trx);
  await sql`drop table ${sql.id(schema, 'audit_checkpoints')}`.execute(trx);
  await sql`drop table ${sql.id(schema, 'audit_log')}`.execute(trx);
  await sql`drop function ${sql.id(schema, 'audit_guard')}()`.execute(trx);
}
