import type { Kysely, Selectable } from 'kysely';
import type { AccessRequestsTable, ControlTables } from '../../db/control-tables.ts';
import type { AnyKysely } from '../../db/database.ts';
import { tenantDb } from '../../db/tenant-tables.ts';

export type AccessRequestRow = Selectable<AccessRequestsTable> & {
  staff_email: string;
  staff_name: string;
  staff_role: string;
  staff_status: string;
  /** The tenant's status now: a grant opens nothing while it is not active. */
  tenant_status: 'active' | 'suspended' | 'deleted' | null;
};

/** Access requests and grants, in the control plane (they outlive any one session or node). */
export class AccessRequestRepository {
  readonly #control: Kysely<ControlTables>;

  constructor(control: Kysely<ControlTables>) {
    this.#control = control;
  }

  async insert(
    row: Omit<
      Selectable<AccessRequestsTable>,
      | 'kind'
      | 'decided_at'
      | 'decided_by'
      | 'starts_at'
      | 'ends_at'
      | 'revoked_at'
      | 'revoked_by'
      | 'acting_user_id'
      | 'confirmed_by_staff'
      | 'summary_sent_at'
    > & { kind: 'consent' | 'break_glass' },
  ): Promise<void> {
    await this.#control.insertInto('access_requests').values(row).execute();
  }

  #withStaff() {
    return this.#control
      .selectFrom('access_requests as r')
      .innerJoin('staff as s', 's.id', 'r.staff_id')
      .leftJoin('tenants as t', 't.id', 'r.tenant_id')
      .selectAll('r')
      .select([
        's.email as staff_email',
        's.display_name as staff_name',
        's.role as staff_role',
        's.status as staff_status',
        't.status as tenant_status',
      ]);
  }

  async find(id: string): Promise<AccessRequestRow | undefined> {
    return this.#withStaff().where('r.id', '=', id).executeTakeFirst();
  }

  /** Newest first; `before` is the `requested_at` of the last row of the previous page. */
  async listForTenant(tenantId: string, limit: number): Promise<AccessRequestRow[]> {
    return this.#withStaff()
      .where('r.tenant_id', '=', tenantId)
      .orderBy('r.requested_at', 'desc')
      .limit(limit)
      .execute();
  }

  async listForStaff(staffId: string, limit: number): Promise<AccessRequestRow[]> {
    return this.#withStaff()
      .where('r.staff_id', '=', staffId)
      .orderBy('r.requested_at', 'desc')
      .limit(limit)
      .execute();
  }

  /** Decides a pending request still inside its pending window; false if it was not (a race lost). */
  async decide(
    id: string,
    decision: {
      status: 'approved' | 'denied';
      at: Date;
      /** The tenant owner or admin who decided; a break-glass confirmation names a staff member instead. */
      by?: string;
      confirmedByStaff?: string;
      startsAt?: Date;
      endsAt?: Date;
      actingUserId?: string;
    },
  ): Promise<boolean> {
    const result = await this.#control
      .updateTable('access_requests')
      .set({
        status: decision.status,
        decided_at: decision.at,
        decided_by: decision.by ?? null,
        confirmed_by_staff: decision.confirmedByStaff ?? null,
        starts_at: decision.startsAt ?? null,
        ends_at: decision.endsAt ?? null,
        acting_user_id: decision.actingUserId ?? null,
      })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .where('pending_until', '>', decision.at)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Claims the summary of one ended grant (revoked, or past its end) for sending; false if another
   * caller (or node) claimed it first, so each summary goes out once.
   */
  async claimSummary(id: string, at: Date): Promise<boolean> {
    const result = await this.#control
      .updateTable('access_requests')
      .set({ summary_sent_at: at })
      .where('id', '=', id)
      .where('summary_sent_at', 'is', null)
      .where((eb) =>
        eb.or([
          eb('status', '=', 'revoked'),
          eb.and([eb('status', '=', 'approved'), eb('ends_at', '<=', at)]),
        ]),
      )
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Approved grants past their end whose summary has not gone out yet (oldest first). */
  async endedWithoutSummary(at: Date, limit: number): Promise<string[]> {
    const rows = await this.#control
      .selectFrom('access_requests')
      .select('id')
      .where('status', '=', 'approved')
      .where('ends_at', '<=', at)
      .where('summary_sent_at', 'is', null)
      .orderBy('ends_at')
      .limit(limit)
      .execute();
    return rows.map((row) => row.id);
  }

  /** Revokes an approved grant that has not ended; false if it was not one. */
  async revoke(id: string, at: Date, by: string): Promise<boolean> {
    const result = await this.#control
      .updateTable('access_requests')
      .set({ status: 'revoked', revoked_at: at, revoked_by: by })
      .where('id', '=', id)
      .where('status', '=', 'approved')
      .where('ends_at', '>', at)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}

/** The active owners' and admins' addresses, in a tenant scope: who is told of a request. */
export async function tenantAdminEmails(db: AnyKysely): Promise<string[]> {
  const rows = await tenantDb(db)
    .selectFrom('users')
    .select('email')
    .where('role', 'in', ['owner', 'admin'])
    .where('status', '=', 'active')
    .orderBy('email')
    .execute();
  return rows.map((row) => row.email);
}

/**
 * The tenant-side stand-in for a staff member acting under grants: a user row that can never sign in
 * (disabled, no password), which a grant's writes are attributed to. Shown in the tenant's user list
 * as "Strongroom support: <name>". Created once per staff member and tenant; returns its id.
 */
export async function ensureStandInUser(
  db: AnyKysely,
  staff: { id: string; name: string },
  newUserId: string,
): Promise<string> {
  const email = `support.${staff.id}@staff.strongroom.invalid`;
  await tenantDb(db)
    .insertInto('users')
    .values({
      id: newUserId,
      email,
      display_name: `Strongroom support: ${staff.name}`,
      status: 'disabled',
      role: 'member',
      password_hash: null,
    })
    .onConflict((oc) => oc.column('email').doNothing())
    .execute();
  const row = await tenantDb(db)
    .selectFrom('users')
    .select('id')
    .where('email', '=', email)
    .executeTakeFirstOrThrow();
  return row.id;
}
