import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/**
 * Support access with the customer's consent: a staff member's request (tenant, reason, scope,
 * access, duration) and, once a tenant owner or admin approved it, the grant it became. What was
 * asked and what was granted can never change afterwards: a trigger refuses any update of the
 * request's terms, any change of a decided request except revoking an approved one, and any delete.
 * (An expired request is not a status: it is pending past `pending_until`, or approved past `ends_at`.)
 *
 * `break_glass` requests (emergency access, off unless an operator enables it) are confirmed by a
 * second staff member instead of the tenant, and last at most an hour.
 */
export const createAccessRequests: Migration = {
  name: '20261123040000-create-access-requests',
  async up({ trx, schema }) {
    const table = sql.id(schema, 'access_requests');
    await sql`create table ${table} (
      id uuid primary key,
      kind text not null default 'consent' check (kind in ('consent', 'break_glass')),
      tenant_id uuid not null references ${sql.id(schema, 'tenants')} (id),
      staff_id uuid not null references ${sql.id(schema, 'staff')} (id),
      reason text not null check (char_length(reason) between 10 and 2000),
      ticket text check (ticket is null or char_length(ticket) between 1 and 200),
      scope_kind text not null check (scope_kind in ('settings', 'projects')),
      project_ids uuid[] not null default '{}',
      access text not null check (access in ('read', 'write')),
      duration_seconds integer not null check (duration_seconds between 60 and 2592000),
      status text not null check (status in ('pending', 'approved', 'denied', 'revoked')),
      requested_at timestamptz not null,
      pending_until timestamptz not null,
      decided_at timestamptz,
      decided_by uuid,
      starts_at timestamptz,
      ends_at timestamptz,
      revoked_at timestamptz,
      revoked_by uuid,
      -- The tenant-side stand-in for the staff member (a user row that can never sign in), set at
      -- approval: what a grant's writes are attributed to (created_by), beside the audit log's grant id.
      acting_user_id uuid,
      -- Break-glass only: the second staff member who confirmed it (never the requester).
      confirmed_by_staff uuid references ${sql.id(schema, 'staff')} (id),
      -- When the summary of what the grant did went to the tenant's admins (at its end or revocation).
      summary_sent_at timestamptz,
      check (kind = 'consent' or duration_seconds <= 3600),
      check (confirmed_by_staff is null or (kind = 'break_glass' and confirmed_by_staff <> staff_id)),
      check ((scope_kind = 'settings') = (cardinality(project_ids) = 0)),
      check ((status = 'approved' or status = 'revoked') = (starts_at is not null and ends_at is not null and acting_user_id is not null))
    )`.execute(trx);
    await sql`create index access_requests_tenant on ${table} (tenant_id, requested_at desc)`.execute(trx);
    await sql`create index access_requests_staff on ${table} (staff_id, requested_at desc)`.execute(trx);
    await sql`
      create function ${sql.id(schema, 'access_requests_immutable')}() returns trigger language plpgsql as $$
      begin
        if tg_op = 'DELETE' then
          raise exception 'access requests are kept' using errcode = '42501';
        end if;
        if (new.id, new.kind, new.tenant_id, new.staff_id, new.reason, new.ticket, new.scope_kind, new.project_ids,
            new.access, new.duration_seconds, new.requested_at, new.pending_until)
           is distinct from
           (old.id, old.kind, old.tenant_id, old.staff_id, old.reason, old.ticket, old.scope_kind, old.project_ids,
            old.access, old.duration_seconds, old.requested_at, old.pending_until) then
          raise exception 'the terms of an access request cannot change' using errcode = '42501';
        end if;
        if old.status = 'pending' then return new; end if;
        if (new.decided_at, new.decided_by, new.starts_at, new.ends_at, new.acting_user_id, new.confirmed_by_staff)
           is distinct from
           (old.decided_at, old.decided_by, old.starts_at, old.ends_at, old.acting_user_id, old.confirmed_by_staff) then
          raise exception 'a decided access request cannot change' using errcode = '42501';
        end if;
        -- An approved grant may be revoked once; the summary of an ended grant may be marked sent once.
        if old.status = 'approved' and new.status = 'revoked'
           and old.revoked_at is null and new.revoked_at is not null
           and (old.summary_sent_at is null or new.summary_sent_at is not distinct from old.summary_sent_at) then
          return new;
        end if;
        if new.status = old.status and old.status in ('approved', 'revoked')
           and (new.revoked_at, new.revoked_by) is not distinct from (old.revoked_at, old.revoked_by)
           and old.summary_sent_at is null and new.summary_sent_at is not null then
          return new;
        end if;
        raise exception 'a decided access request cannot change' using errcode = '42501';
      end $$`.execute(trx);
    await sql`create trigger access_requests_immutable before update or delete on ${table}
      for each row execute function ${sql.id(schema, 'access_requests_immutable')}()`.execute(trx);
  },
  async down({ trx, schema }) {
    await sql`drop table ${sql.id(schema, 'access_requests')}`.execute(trx);
    await sql`drop function ${sql.id(schema, 'access_requests_immutable')}()`.execute(trx);
  },
};
