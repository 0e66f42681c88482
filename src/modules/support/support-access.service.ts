import type { WithTenant } from '../../db/with-tenant.ts';
import type { Clock } from '../../platform/clock.ts';
import { newId } from '../../platform/ids.ts';
import type { Mailer } from '../../ports/mail.port.ts';
import { accessErrors, authorize } from '../access/policy.ts';
import type { UserPrincipal } from '../identity/identity.service.ts';
import type { User } from '../identity/user.repository.ts';
import type { UserAccess } from '../projects/project.service.ts';
import type { StaffPrincipal } from '../staff/staff.service.ts';
import { tenantErrors } from '../tenants/tenant.errors.ts';
import type { TenantRepository } from '../tenants/tenant.repository.ts';
import {
  type AccessRequestRepository,
  type AccessRequestRow,
  ensureStandInUser,
  tenantAdminEmails,
} from './access-request.repository.ts';
import { supportErrors } from './support.errors.ts';

export type AccessScope = { kind: 'settings' } | { kind: 'projects'; projectIds: string[] };

export type AccessRequestStatus = 'pending' | 'approved' | 'denied' | 'revoked' | 'expired';

/** A request as its tenant and its requester see it. */
export interface AccessRequest {
  id: string;
  /** `break_glass`: emergency access, confirmed by a second staff member instead of the tenant. */
  kind: 'consent' | 'break_glass';
  tenantId: string;
  staff: { id: string; email: string; name: string; role: string };
  reason: string;
  ticket: string | null;
  scope: AccessScope;
  access: 'read' | 'write';
  durationMinutes: number;
  /** `expired`: pending past `pendingUntil`, or approved past `endsAt`. */
  status: AccessRequestStatus;
  requestedAt: Date;
  pendingUntil: Date;
  decidedAt: Date | null;
  decidedBy: string | null;
  startsAt: Date | null;
  endsAt: Date | null;
  revokedAt: Date | null;
  revokedBy: string | null;
  /** Break-glass: the second staff member who confirmed it. */
  confirmedBy: string | null;
}

export interface SupportAccessSettings {
  /** The longest grant a request may ask for. */
  maxGrantMs: number;
  /** How long a request waits for a decision. */
  pendingMs: number;
  /** Whether emergency (break-glass) access may be requested at all; off by default. */
  breakGlass: boolean;
}

export const defaultSupportAccessSettings: SupportAccessSettings = {
  maxGrantMs: 24 * 3600_000,
  pendingMs: 4 * 24 * 3600_000,
  breakGlass: false,
};

const defaultGrantMs = 8 * 3600_000;
/** Break-glass access lasts at most an hour (and waits at most an hour for its second person). */
const breakGlassMaxMs = 3600_000;

type GrantActivity = (
  tenantId: string,
  grantId: string,
) => Promise<Array<{ action: string; outcome: string; count: number }>>;

interface RequestInput {
  tenant: string;
  reason: unknown;
  ticket?: unknown;
  scope: unknown;
  access?: unknown;
  durationMinutes?: unknown;
}
const maxProjects = 20;
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const listLimit = 200;

/**
 * The customer lockbox. Support staff ask for access to one tenant (a reason, a scope: its settings
 * or named projects, read unless write is asked for, a duration); the tenant's owners and admins are
 * told by e-mail and in the API, and only they approve or deny, with a session (never an API key,
 * never staff, never the requester). An approved grant's terms are fixed (the database refuses to
 * change them); the tenant can revoke it at any time, and it ends on its own. Developers can never
 * receive a grant.
 */
export class SupportAccessService {
  readonly #requests: AccessRequestRepository;
  readonly #tenants: TenantRepository;
  readonly #withTenant: WithTenant;
  readonly #mailer: Mailer | undefined;
  readonly #clock: Clock;
  readonly #settings: SupportAccessSettings;
  readonly #grantActivity: GrantActivity;

  constructor(deps: {
    requests: AccessRequestRepository;
    tenants: TenantRepository;
    withTenant: WithTenant;
    mailer?: Mailer | undefined;
    clock: Clock;
    settings?: SupportAccessSettings;
    /** What a grant did, from the tenant's audit log (AuditService.grantActivity). */
    grantActivity: GrantActivity;
  }) {
    this.#requests = deps.requests;
    this.#tenants = deps.tenants;
    this.#withTenant = deps.withTenant;
    this.#mailer = deps.mailer;
    this.#clock = deps.clock;
    this.#settings = deps.settings ?? defaultSupportAccessSettings;
    this.#grantActivity = deps.grantActivity;
  }

  /** A staff member asks; the caller has checked the staff permission (`support.request`). */
  async request(staff: StaffPrincipal, input: RequestInput): Promise<AccessRequest> {
    return this.#open(staff, input, 'consent');
  }

  /**
   * Emergency access, when an operator enabled it (`STRONGROOM_BREAK_GLASS=on`): a second staff member
   * must confirm it, it lasts at most an hour, and the tenant's owners and admins are told at once,
   * when it is asked for and again when it opens. The tenant can deny or revoke it like any grant.
   */
  async breakGlass(staff: StaffPrincipal, input: RequestInput): Promise<AccessRequest> {
    if (!this.#settings.breakGlass) throw supportErrors.breakGlassDisabled();
    return this.#open(staff, input, 'break_glass');
  }

  /** The second person: any other eligible staff member with `support.break_glass_confirm`. */
  async confirmBreakGlass(staff: StaffPrincipal, id: string): Promise<AccessRequest> {
    if (!this.#settings.breakGlass) throw supportErrors.breakGlassDisabled();
    const row = uuidPattern.test(id) ? await this.#requests.find(id) : undefined;
    if (row?.kind !== 'break_glass') throw accessErrors.notFound();
    if (row.staff_id === staff.staffId) throw supportErrors.secondPersonRequired();
    if (row.staff_role === 'developer' || row.staff_status !== 'active') throw supportErrors.ineligible();
    assertTenantLive(row);
    const now = this.#clock.now();
    const actingUserId = await this.#withTenant(row.tenant_id, (scope) =>
      ensureStandInUser(scope.db, { id: row.staff_id, name: row.staff_name }, newId()),
    );
    const confirmed = await this.#requests.decide(row.id, {
      status: 'approved',
      at: now,
      confirmedByStaff: staff.staffId,
      startsAt: now,
      endsAt: new Date(now.getTime() + row.duration_seconds * 1000),
      actingUserId,
    });
    if (!confirmed) throw supportErrors.notPending(present((await this.#requests.find(row.id))!, now).status);
    const opened = present((await this.#requests.find(row.id))!, now);
    await this.#notifyTenant(row.tenant_id, opened);
    return opened;
  }

  async #open(
    staff: StaffPrincipal,
    input: RequestInput,
    kind: 'consent' | 'break_glass',
  ): Promise<AccessRequest> {
    if (staff.role === 'developer') throw supportErrors.ineligible();
    const reason = typeof input.reason === 'string' ? input.reason.trim() : '';
    if (reason.length < 10 || reason.length > 2000 || hasControlCharacters(reason)) {
      throw supportErrors.invalidRequest('reason', 'must be 10-2,000 characters of text');
    }
    const ticket = input.ticket === undefined || input.ticket === null ? null : String(input.ticket).trim();
    if (ticket !== null && (ticket.length < 1 || ticket.length > 200 || hasControlCharacters(ticket))) {
      throw supportErrors.invalidRequest('ticket', 'must be 1-200 characters of text');
    }
    const scope = acceptScope(input.scope);
    const access = input.access ?? 'read';
    if (access !== 'read' && access !== 'write')
      throw supportErrors.invalidRequest('access', 'must be read or write');
    const maxMs = kind === 'break_glass' ? breakGlassMaxMs : this.#settings.maxGrantMs;
    const durationMs =
      input.durationMinutes === undefined
        ? Math.min(defaultGrantMs, maxMs)
        : Number(input.durationMinutes) * 60_000;
    if (!Number.isSafeInteger(input.durationMinutes ?? 0) || durationMs < 60_000 || durationMs > maxMs) {
      throw supportErrors.invalidRequest(
        'durationMinutes',
        `must be a whole number of minutes from 1 to ${maxMs / 60_000}`,
      );
    }
    const tenant = uuidPattern.test(input.tenant)
      ? await this.#tenants.findById(input.tenant)
      : await this.#tenants.findLiveBySlug(input.tenant);
    if (!tenant || tenant.status === 'deleted') throw tenantErrors.notFound();
    // A suspended tenant's owners cannot sign in to decide, and no grant would open it anyway.
    if (tenant.status === 'suspended') throw tenantErrors.suspended();

    const now = this.#clock.now();
    const id = newId();
    await this.#requests.insert({
      id,
      kind,
      tenant_id: tenant.id,
      staff_id: staff.staffId,
      reason,
      ticket,
      scope_kind: scope.kind,
      project_ids: scope.kind === 'projects' ? scope.projectIds : [],
      access,
      duration_seconds: durationMs / 1000,
      status: 'pending',
      requested_at: now,
      // A break-glass request is an emergency: it waits an hour for its second person, not days.
      pending_until: new Date(
        now.getTime() + (kind === 'break_glass' ? breakGlassMaxMs : this.#settings.pendingMs),
      ),
    });
    const created = present((await this.#requests.find(id))!, now);
    await this.#notifyTenant(tenant.id, created);
    return created;
  }

  /** The staff member's own requests, newest first. */
  async listMine(staff: StaffPrincipal): Promise<AccessRequest[]> {
    const now = this.#clock.now();
    return (await this.#requests.listForStaff(staff.staffId, listLimit)).map((row) => present(row, now));
  }

  /** Every request for the caller's tenant, newest first (owners and admins). */
  async listForTenant(principal: UserAccess): Promise<AccessRequest[]> {
    authorize(principal, 'access_requests.read', { tenantId: principal.tenantId, isProject: false });
    const now = this.#clock.now();
    return (await this.#requests.listForTenant(principal.tenantId, listLimit)).map((row) =>
      present(row, now),
    );
  }

  async get(principal: UserAccess, id: string): Promise<AccessRequest> {
    authorize(principal, 'access_requests.read', { tenantId: principal.tenantId, isProject: false });
    return present(await this.#ownRow(principal, id), this.#clock.now());
  }

  async approve(principal: UserAccess, id: string): Promise<AccessRequest> {
    return this.#decide(principal, id, 'approved');
  }

  async deny(principal: UserAccess, id: string): Promise<AccessRequest> {
    return this.#decide(principal, id, 'denied');
  }

  /** Ends an approved grant now; every node refuses it from the next request on. */
  async revoke(principal: UserAccess, id: string): Promise<AccessRequest> {
    authorizeDecision(principal);
    const row = await this.#ownRow(principal, id);
    const now = this.#clock.now();
    if (!(await this.#requests.revoke(row.id, now, principal.userId))) {
      throw supportErrors.notActive(present((await this.#requests.find(row.id))!, now).status);
    }
    const revoked = present((await this.#requests.find(row.id))!, now);
    await this.#sendSummary(revoked);
    return revoked;
  }

  /**
   * Sends the summary of every grant that ended since the last call (the server calls this every
   * minute; revocations send theirs at once). Each summary goes out once, whichever node claims it.
   */
  async sendEndedGrantSummaries(): Promise<number> {
    const now = this.#clock.now();
    let sent = 0;
    for (const id of await this.#requests.endedWithoutSummary(now, 100)) {
      const row = await this.#requests.find(id);
      if (row && (await this.#sendSummary(present(row, now)))) sent++;
    }
    return sent;
  }

  /**
   * Tells the tenant's owners and admins what an ended grant did (its entries in their audit log,
   * counted by action and outcome). False if another caller had already claimed this summary.
   */
  async #sendSummary(grant: AccessRequest): Promise<boolean> {
    if (!(await this.#requests.claimSummary(grant.id, this.#clock.now()))) return false;
    if (!this.#mailer) return true;
    const activity = await this.#grantActivity(grant.tenantId, grant.id);
    const to = await this.#withTenant(grant.tenantId, (scope) => tenantAdminEmails(scope.db), {
      readOnly: true,
    });
    if (to.length === 0) return true;
    const total = activity.reduce((sum, row) => sum + row.count, 0);
    const ended =
      grant.status === 'revoked'
        ? `was revoked at ${grant.revokedAt?.toISOString()}`
        : `ended at ${grant.endsAt?.toISOString()}`;
    await this.#mailer
      .send({
        to: to.slice(0, 50),
        subject: `Strongroom support access ended: ${total} request(s) made under it`,
        text: [
          `The ${grant.kind === 'break_glass' ? 'emergency access' : 'support access'} of ${grant.staff.name} <${grant.staff.email}> ${ended}.`,
          `It opened at ${grant.startsAt?.toISOString()} for ${grant.access} access (${grant.scope.kind === 'settings' ? 'account settings' : `projects ${grant.scope.projectIds.join(', ')}`}).`,
          '',
          total === 0 ? 'Nothing was done under it.' : 'What was done under it (action, outcome: requests):',
          ...activity.map((row) => `  ${row.action}, ${row.outcome}: ${row.count}`),
          '',
          `Every entry is in your audit log: GET /api/v1/audit?grant=${grant.id}`,
        ].join('\n'),
        headers: { 'X-Strongroom-Access-Request': grant.id },
      })
      .catch(() => undefined);
    return true;
  }

  /**
   * The principal of a staff member acting under grant `grantId`: checked on every request against
   * the grant's row (so a revocation or the end of the grant takes effect on the very next request,
   * on every node). Refused unless the grant is this staff member's, approved and not ended, and
   * they are still active and not a developer.
   */
  async authenticateGrant(
    staff: StaffPrincipal,
    grantId: string,
  ): Promise<{ principal: UserPrincipal; user: User }> {
    const row = uuidPattern.test(grantId) ? await this.#requests.find(grantId) : undefined;
    if (!row || row.staff_id !== staff.staffId) throw supportErrors.grantUnusable('unknown');
    const now = this.#clock.now();
    const { status } = present(row, now);
    if (status !== 'approved') throw supportErrors.grantUnusable(status);
    // Checked on every request, like the grant itself: a suspension closes every grant of the
    // tenant at once (its clock keeps running; after a resume it opens again until it ends).
    assertTenantLive(row);
    if (row.staff_role === 'developer' || row.staff_status !== 'active' || !row.acting_user_id) {
      throw supportErrors.grantUnusable('ineligible');
    }
    return {
      principal: {
        kind: 'user',
        tenantId: row.tenant_id,
        userId: row.acting_user_id,
        role: 'member',
        via: 'support_grant',
        credentialId: staff.keyId,
        grant: {
          id: row.id,
          access: row.access,
          projectIds: row.scope_kind === 'settings' ? null : row.project_ids,
          staffId: staff.staffId,
        },
      },
      user: {
        id: row.acting_user_id,
        email: `support.${row.staff_id}@staff.strongroom.invalid`,
        displayName: `Strongroom support: ${row.staff_name}`,
        status: 'disabled',
        role: 'member',
        createdAt: row.decided_at ?? now,
      },
    };
  }

  async #decide(principal: UserAccess, id: string, status: 'approved' | 'denied'): Promise<AccessRequest> {
    authorizeDecision(principal);
    const row = await this.#ownRow(principal, id);
    const now = this.#clock.now();
    if (status === 'approved' && (row.staff_role === 'developer' || row.staff_status !== 'active')) {
      throw supportErrors.ineligible();
    }
    if (status === 'approved') assertTenantLive(row);
    // The stand-in is made before the decision; if the decision then loses a race, it is harmless.
    const actingUserId =
      status === 'approved'
        ? await this.#withTenant(principal.tenantId, (scope) =>
            ensureStandInUser(scope.db, { id: row.staff_id, name: row.staff_name }, newId()),
          )
        : undefined;
    const decided = await this.#requests.decide(row.id, {
      status,
      at: now,
      by: principal.userId,
      ...(actingUserId !== undefined
        ? { startsAt: now, endsAt: new Date(now.getTime() + row.duration_seconds * 1000), actingUserId }
        : {}),
    });
    if (!decided) throw supportErrors.notPending(present((await this.#requests.find(row.id))!, now).status);
    return present((await this.#requests.find(row.id))!, now);
  }

  /** The request, if it is the caller's tenant's; another tenant's is `not_found`, as if absent. */
  async #ownRow(principal: UserAccess, id: string): Promise<AccessRequestRow> {
    const row = uuidPattern.test(id) ? await this.#requests.find(id) : undefined;
    if (!row || row.tenant_id !== principal.tenantId) throw accessErrors.notFound();
    return row;
  }

  /** Tells the tenant's owners and admins; a mail failure does not undo anything (it is in the API). */
  async #notifyTenant(tenantId: string, request: AccessRequest): Promise<void> {
    if (!this.#mailer) return;
    const to = await this.#withTenant(tenantId, (scope) => tenantAdminEmails(scope.db), { readOnly: true });
    if (to.length === 0) return;
    const scope =
      request.scope.kind === 'settings'
        ? 'your account settings only'
        : `${request.scope.projectIds.length} named project(s): ${request.scope.projectIds.join(', ')}`;
    const who = `${request.staff.name} <${request.staff.email}> (${request.staff.role})`;
    const lines =
      request.kind === 'consent'
        ? [
            `${who} asks for ${request.access} access to ${scope},`,
            `for ${request.durationMinutes} minutes from your approval.`,
            '',
            `Reason: ${request.reason}`,
            ...(request.ticket ? [`Ticket: ${request.ticket}`] : []),
            '',
            `Nothing is opened unless an owner or admin approves it: POST /api/v1/access-requests/${request.id}/approve`,
            `(or /deny). The request expires unanswered at ${request.pendingUntil.toISOString()}.`,
            'An approved grant can be revoked at any time: POST /api/v1/access-requests/<id>/revoke.',
          ]
        : [
            request.status === 'approved'
              ? `EMERGENCY ACCESS IS OPEN: ${who} has ${request.access} access to ${scope} until ${request.endsAt?.toISOString()}, confirmed by a second staff member.`
              : `EMERGENCY ACCESS REQUESTED: ${who} asks for ${request.access} access to ${scope} for ${request.durationMinutes} minutes, without waiting for your approval; it opens once a second staff member confirms it.`,
            '',
            `Reason: ${request.reason}`,
            ...(request.ticket ? [`Ticket: ${request.ticket}`] : []),
            '',
            `You can end it at any time: POST /api/v1/access-requests/${request.id}/${request.status === 'approved' ? 'revoke' : 'deny'}`,
          ];
    await this.#mailer
      .send({
        to: to.slice(0, 50),
        subject:
          request.kind === 'consent'
            ? `Strongroom support asks for ${request.access} access to your account`
            : `Emergency access to your account: ${request.status === 'approved' ? 'open now' : 'requested'}`,
        text: lines.join('\n'),
        headers: { 'X-Strongroom-Access-Request': request.id },
      })
      .catch(() => undefined);
  }
}

/** A grant of a suspended tenant opens nothing (`tenant_suspended`); of a deleted one, `tenant_not_found`. */
function assertTenantLive(row: AccessRequestRow): void {
  if (row.tenant_status === 'suspended') throw tenantErrors.suspended();
  if (row.tenant_status !== 'active') throw tenantErrors.notFound();
}

/** Deciding is for owners and admins with a session: an API key never approves, denies or revokes. */
function authorizeDecision(principal: UserAccess): void {
  authorize(principal, 'access_requests.decide', { tenantId: principal.tenantId, isProject: false });
}

function acceptScope(input: unknown): AccessScope {
  const scope = input as { kind?: unknown; projectIds?: unknown } | null;
  if (scope?.kind === 'settings' && scope.projectIds === undefined) return { kind: 'settings' };
  if (scope?.kind === 'projects' && Array.isArray(scope.projectIds)) {
    const ids = [...new Set(scope.projectIds)];
    if (
      ids.length >= 1 &&
      ids.length <= maxProjects &&
      ids.every((id) => typeof id === 'string' && uuidPattern.test(id))
    ) {
      return { kind: 'projects', projectIds: ids as string[] };
    }
  }
  throw supportErrors.invalidRequest(
    'scope',
    `must be {"kind":"settings"} or {"kind":"projects","projectIds":[1-${maxProjects} project ids]}`,
  );
}

function hasControlCharacters(text: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
  return /[\u0000-\u0008\u000b-\u001f\u007f]/.test(text);
}

function present(row: AccessRequestRow, now: Date): AccessRequest {
  const expired =
    (row.status === 'pending' && row.pending_until <= now) ||
    (row.status === 'approved' && row.ends_at !== null && row.ends_at <= now);
  return {
    id: row.id,
    kind: row.kind,
    tenantId: row.tenant_id,
    staff: { id: row.staff_id, email: row.staff_email, name: row.staff_name, role: row.staff_role },
    reason: row.reason,
    ticket: row.ticket,
    scope:
      row.scope_kind === 'settings'
        ? { kind: 'settings' }
        : { kind: 'projects', projectIds: row.project_ids },
    access: row.access,
    durationMinutes: row.duration_seconds / 60,
    status: expired ? 'expired' : row.status,
    requestedAt: row.requested_at,
    pendingUntil: row.pending_until,
    decidedAt: row.decided_at,
    decidedBy: row.decided_by,
    startsAt: row.starts_at,
    endsAt: row.ends_at,
    revokedAt: row.revoked_at,
    revokedBy: row.revoked_by,
    confirmedBy: row.confirmed_by_staff,
  };
}
