import { generateToken, hashToken } from '../../crypto/tokens.ts';
import type { AnyKysely } from '../../db/database.ts';
import type { WithTenant } from '../../db/with-tenant.ts';
import type { Clock } from '../../platform/clock.ts';
import { newId } from '../../platform/ids.ts';
import { type Mailer, mailErrors } from '../../ports/mail.port.ts';
import { accessErrors, authorize, type KeyScope, type SupportGrantScope } from '../access/policy.ts';
import { currentAuditContext } from '../audit/audit-context.ts';
import { tenantErrors } from '../tenants/tenant.errors.ts';
import type { TenantRepository } from '../tenants/tenant.repository.ts';
import { normalizeEmail } from '../tenants/tenant-validation.ts';
import type { CredentialsRepository } from './credentials.repository.ts';
import { identityErrors } from './identity.errors.ts';
import type { LoginThrottle } from './login-throttle.ts';
import type { MfaService } from './mfa.service.ts';
import type { PasswordHasher } from './password-hasher.ts';
import { acceptNewPassword, maxPasswordBytes, normalizePassword } from './password-policy.ts';
import type { Authenticated, PrincipalCache } from './principal-cache.ts';
import {
  type AccountRole,
  type ApiKey,
  readSecuritySettings,
  type User,
  userRepository,
  writeSecuritySettings,
} from './user.repository.ts';

/** Who is calling the tenant API with a session: one person of one tenant. */
export interface UserPrincipal {
  kind: 'user';
  tenantId: string;
  userId: string;
  role: AccountRole;
  /**
   * How the caller authenticated, and the id of that session or key (for a support grant: the staff
   * member's key; `userId` is then their stand-in user in the tenant).
   */
  via: 'session' | 'api_key' | 'support_grant';
  credentialId: string;
  /** An API key's narrowing of the user's rights; none for a session. */
  scope?: KeyScope;
  /** A staff member acting under a support grant the tenant approved: the grant alone decides. */
  grant?: SupportGrantScope & { staffId: string };
  /** The tenant requires MFA and the user has none yet: only enrolment (and sign-out) is open. */
  mfaEnrollmentRequired?: boolean;
}

export interface IssuedSession {
  /** Shown once (cookie and body); only its SHA-256 is stored. */
  token: string;
  expiresAt: Date;
}

export interface SessionPolicy {
  /** A session unused this long ends (NIST 800-63B AAL2: 1 hour). */
  idleTimeoutMs: number;
  /** A session ends this long after login whatever happens (AAL2: 24 hours). */
  absoluteTimeoutMs: number;
}

export const defaultSessionPolicy: SessionPolicy = {
  idleTimeoutMs: 60 * 60_000,
  absoluteTimeoutMs: 24 * 60 * 60_000,
};

/** Sliding the idle expiry costs a write; do it at most this often per session. */
const touchIntervalMs = 60_000;

/** What a credential without an expiry is cached against (the cache's own TTL is far shorter). */
const farFuture = new Date(8_640_000_000_000_000);

/** How long an emailed invitation stays valid. */
const invitationTtlMs = 7 * 24 * 60 * 60_000;

/**
 * Tenant accounts: the owner's first sign-up through the one-time setup token, login with a
 * password, sessions (token → SHA-256 in the tenant's schema, plus the control-plane index that says
 * which tenant a token belongs to), logout and "log out everywhere".
 */
export class IdentityService {
  readonly #withTenant: WithTenant;
  readonly #tenants: TenantRepository;
  readonly #credentials: CredentialsRepository;
  readonly #hasher: PasswordHasher;
  readonly #throttle: LoginThrottle;
  readonly #mfa: MfaService;
  readonly #principals: PrincipalCache;
  readonly #failedLoginFloorMs: number;
  readonly #clock: Clock;
  readonly #policy: SessionPolicy;
  readonly #mailer: Mailer | undefined;

  constructor(deps: {
    withTenant: WithTenant;
    tenants: TenantRepository;
    credentials: CredentialsRepository;
    hasher: PasswordHasher;
    throttle: LoginThrottle;
    mfa: MfaService;
    principals: PrincipalCache;
    clock: Clock;
    sessionPolicy?: SessionPolicy;
    /** The least time a refused login takes (default 200 ms): no timing differences between refusals. */
    failedLoginFloorMs?: number;
    /** Sends invitations; without one, inviting answers `mail_unavailable`. */
    mailer?: Mailer;
  }) {
    this.#mailer = deps.mailer;
    this.#throttle = deps.throttle;
    this.#mfa = deps.mfa;
    this.#principals = deps.principals;
    this.#failedLoginFloorMs = deps.failedLoginFloorMs ?? 200;
    this.#withTenant = deps.withTenant;
    this.#tenants = deps.tenants;
    this.#credentials = deps.credentials;
    this.#hasher = deps.hasher;
    this.#clock = deps.clock;
    this.#policy = deps.sessionPolicy ?? defaultSessionPolicy;
  }

  /**
   * The owner's first sign-in: the setup token printed by `tenant create` names the tenant and the
   * owner's email; the owner picks a display name and a password, and is signed in.
   */
  async setupOwner(input: {
    token: string;
    displayName: string;
    password: string;
    sourceIp?: string;
    userAgent?: string;
  }): Promise<{ user: User; session: IssuedSession }> {
    const { record, tenant, displayName, passwordHash } = await this.#redeemToken('owner_setup', input);
    const user = await this.#withTenant(tenant.id, (scope) =>
      userRepository.insert(scope.db, {
        id: newId(),
        email: record.email,
        displayName,
        status: 'active',
        role: 'owner',
        passwordHash,
        createdAt: this.#clock.now(),
      }),
    );
    const session = await this.#startSession(tenant.id, user.id, input);
    return { user, session };
  }

  /**
   * Login with tenant slug, email and password. Unknown tenant, unknown email, wrong password and a
   * disabled account all answer `invalid_credentials`, after the same argon2 work.
   */
  async login(input: {
    tenant: string;
    email: string;
    password: string;
    totp?: string | undefined;
    recoveryCode?: string | undefined;
    sourceIp?: string;
    userAgent?: string;
  }): Promise<{ user: User; session: IssuedSession }> {
    const password = typeof input.password === 'string' ? input.password : '';
    if (Buffer.byteLength(password, 'utf8') > maxPasswordBytes) throw identityErrors.invalidCredentials();
    const normalized = normalizePassword(password);
    let email: string;
    try {
      email = normalizeEmail(input.email, 'email');
    } catch {
      email = '';
    }
    const attempt = { tenant: String(input.tenant), email: email || String(input.email) };
    await this.#throttle.check(attempt, input.sourceIp);
    const started = performance.now();
    const refuse = async () => {
      await this.#throttle.recordFailure(attempt, input.sourceIp);
      // Every refusal takes at least the same wall time, so what little differs between the paths
      // (a lookup that finds a row or not, machine noise) cannot be timed from outside.
      // setTimeout counts whole milliseconds from a cached loop time, so it can wake up to 1 ms
      // early: wait again until the floor has really passed.
      const deadline = started + this.#failedLoginFloorMs;
      for (let wait = deadline - performance.now(); wait > 0; wait = deadline - performance.now()) {
        await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)));
      }
      return identityErrors.invalidCredentials();
    };
    const tenant =
      typeof input.tenant === 'string' ? await this.#tenants.findLiveBySlug(input.tenant) : undefined;
    const account =
      tenant && email
        ? await this.#withTenant(tenant.id, (scope) => userRepository.findByEmail(scope.db, email))
        : undefined;
    if (!tenant || !account || account.passwordHash === null) {
      await this.#hasher.verifyNothing(normalized);
      throw await refuse();
    }
    const check = await this.#hasher.verify(account.passwordHash, normalized);
    if (!check.ok || account.status !== 'active') throw await refuse();
    if (account.mfaEnabled && account.mfaSecret !== null) {
      // Asked for only after the right password, so it reveals nothing to someone without it.
      if (input.totp === undefined && input.recoveryCode === undefined) throw identityErrors.mfaRequired();
      const secret = account.mfaSecret;
      const passed = await this.#withTenant(tenant.id, (scope) =>
        this.#mfa.verifySecondFactor(scope.db, tenant.id, { id: account.id, mfaSecret: secret }, input),
      );
      if (!passed) throw await refuse();
    }
    await this.#throttle.recordSuccess(attempt);
    // From here the request acts as the signed-in user: its audit entry (written with the session)
    // names them.
    const auditContext = currentAuditContext();
    if (auditContext) auditContext.actor = { kind: 'user', id: account.id, apiKeyId: null };
    // Only now, with the right password, does the caller learn the tenant is suspended.
    if (tenant.status === 'suspended') throw identityErrors.tenantSuspended();
    if (check.needsRehash) {
      const upgraded = await this.#hasher.hash(normalized);
      await this.#withTenant(tenant.id, (scope) =>
        userRepository.updatePasswordHash(scope.db, account.id, upgraded),
      );
    }
    const { passwordHash: _secret, mfaSecret: _mfa, mfaEnabled: _enabled, ...user } = account;
    const session = await this.#startSession(tenant.id, account.id, input);
    return { user, session };
  }

  /**
   * An account owner or admin invites a person: an `invited` account with the given role, and a
   * one-time token sent only by email (7 days). If the mail cannot be sent, nothing is kept.
   */
  async invite(
    principal: UserPrincipal,
    input: { email: string; displayName?: string; role: 'admin' | 'member' },
  ): Promise<User> {
    authorize(principal, 'users.invite', { tenantId: principal.tenantId, isProject: false });
    if (!this.#mailer) throw mailErrors.unavailable(new Error('no mailer configured'));
    const email = normalizeEmail(input.email, 'email');
    const displayName = acceptDisplayName(input.displayName ?? email.split('@')[0]);
    const tenant = await this.#tenants.findById(principal.tenantId);
    if (tenant?.status !== 'active') throw identityErrors.tenantSuspended();
    const user = await this.#withTenant(principal.tenantId, async (scope) => {
      if (await userRepository.findByEmail(scope.db, email)) throw identityErrors.userExists();
      return userRepository.insert(scope.db, {
        id: newId(),
        email,
        displayName,
        status: 'invited',
        role: input.role,
        passwordHash: null,
        createdAt: this.#clock.now(),
      });
    });
    const token = generateToken('sri');
    const tokenHash = hashToken(token);
    const expiresAt = new Date(this.#clock.now().getTime() + invitationTtlMs);
    await this.#credentials.insertInvitation(tokenHash, principal.tenantId, email, expiresAt);
    try {
      await this.#mailer.send({
        to: [email],
        subject: `You are invited to ${tenant.name ?? tenant.slug} on Strongroom`,
        text: [
          `You have been invited to join ${tenant.name ?? tenant.slug} (${tenant.slug}) on Strongroom as ${input.role}.`,
          '',
          `Your invitation code, valid until ${expiresAt.toISOString()} and usable once:`,
          '',
          `    ${token}`,
          '',
          'Accept it by choosing a password: POST /api/v1/auth/accept-invitation',
          '{"token": "<the code>", "displayName": "<your name>", "password": "<15 characters or more>"}',
          '',
          'If you did not expect this, ignore this message.',
        ].join('\n'),
      });
    } catch (error) {
      // Undo, so the admin can simply invite again.
      await this.#credentials.deleteSetupToken(tokenHash);
      await this.#withTenant(principal.tenantId, (scope) => userRepository.deleteInvited(scope.db, user.id));
      throw error;
    }
    return user;
  }

  /** The invited person chooses a password with the emailed token, and is signed in. */
  async acceptInvitation(input: {
    token: string;
    displayName: string;
    password: string;
    sourceIp?: string;
    userAgent?: string;
  }): Promise<{ user: User; session: IssuedSession }> {
    const { record, tenant, displayName, passwordHash } = await this.#redeemToken('invitation', input);
    const user = await this.#withTenant(tenant.id, (scope) =>
      userRepository.activateInvited(scope.db, record.email, displayName, passwordHash),
    );
    if (!user) throw identityErrors.setupTokenInvalid();
    const session = await this.#startSession(tenant.id, user.id, input);
    return { user, session };
  }

  /**
   * A tenant's accounts for `strongroom user list`: the CLI runs with the operator's own database
   * access, outside the staff API (where tenant data stays closed without a customer's grant).
   */
  async listUsersForOperator(idOrSlug: string): Promise<User[]> {
    const tenant = /^[0-9a-f-]{36}$/.test(idOrSlug)
      ? await this.#tenants.findById(idOrSlug)
      : await this.#tenants.findLiveBySlug(idOrSlug);
    if (!tenant || tenant.status === 'deleted') throw tenantErrors.notFound();
    return this.#withTenant(tenant.id, (scope) => userRepository.list(scope.db), { readOnly: true });
  }

  /** The tenant's security settings (owners and admins). */
  async getSecuritySettings(principal: UserPrincipal): Promise<{ mfaRequired: boolean }> {
    authorize(principal, 'tenant.settings.read', { tenantId: principal.tenantId, isProject: false });
    return this.#withTenant(principal.tenantId, (scope) => readSecuritySettings(scope.db), {
      readOnly: true,
    });
  }

  /**
   * Makes MFA mandatory (or not) for every account of the tenant. It takes effect on each user's
   * next request: one without MFA can then only enrol, and their API keys are refused until they do.
   */
  async updateSecuritySettings(
    principal: UserPrincipal,
    settings: { mfaRequired: boolean },
  ): Promise<{ mfaRequired: boolean }> {
    authorize(principal, 'tenant.settings.update', { tenantId: principal.tenantId, isProject: false });
    // Every credential of the tenant may now be confined to enrolment: clear them all first.
    await this.#principals.forgetTenant(principal.tenantId);
    await this.#withTenant(principal.tenantId, (scope) => writeSecuritySettings(scope.db, settings));
    await this.#principals.forgetTenant(principal.tenantId).catch(() => undefined);
    return settings;
  }

  /**
   * An account owner or admin changes another account's role or status, effective on that user's
   * next request on every node. Disabling ends all their sessions and revokes all their API keys
   * (re-enabling does not bring them back). Only owners may touch owners or make one; nobody changes
   * their own account here; and the tenant always keeps an active owner.
   */
  async updateUser(
    principal: UserPrincipal,
    userId: string,
    change: { role?: AccountRole | undefined; status?: 'active' | 'disabled' | undefined },
  ): Promise<User> {
    authorize(principal, 'users.manage', { tenantId: principal.tenantId, isProject: false });
    if (userId === principal.userId) throw identityErrors.ownAccount();
    const { user, revoked } = await this.#changeAccess(
      principal.tenantId,
      (db) => userRepository.credentialHashes(db, userId),
      async (db) => {
        await userRepository.lockOwners(db);
        const target = await this.#manageableUser(db, principal, userId);
        if (change.role === 'owner' && principal.role !== 'owner') throw accessErrors.forbidden();
        if (change.status && target.status === 'invited') throw identityErrors.invitationPending();
        const losesOwner =
          target.role === 'owner' &&
          target.status === 'active' &&
          ((change.role !== undefined && change.role !== 'owner') || change.status === 'disabled');
        if (losesOwner && (await userRepository.countOtherActiveOwners(db, target.id)) === 0) {
          throw identityErrors.lastOwner();
        }
        const user = await userRepository.update(db, userId, change);
        const revoked =
          change.status === 'disabled' && target.status !== 'disabled'
            ? [
                ...(await userRepository.revokeSessions(db, { userId })),
                ...(await userRepository.revokeApiKeys(db, userId)),
              ]
            : [];
        return { user, revoked };
      },
    );
    await this.#credentials.deleteIndexEntries(revoked);
    return user;
  }

  /**
   * Turns off another account's two-factor authentication (a lost phone, every recovery code used):
   * the TOTP secret and recovery codes are erased and their sessions end, so they sign in again with
   * their password and enrol anew (at once, if the tenant requires MFA). Owners and admins; only
   * owners for an owner; never one's own.
   */
  async resetMfa(principal: UserPrincipal, userId: string): Promise<void> {
    authorize(principal, 'users.manage', { tenantId: principal.tenantId, isProject: false });
    if (userId === principal.userId) throw identityErrors.ownAccount();
    const revoked = await this.#changeAccess(
      principal.tenantId,
      (db) => userRepository.credentialHashes(db, userId),
      async (db) => {
        await this.#manageableUser(db, principal, userId);
        if (!(await userRepository.clearMfa(db, userId))) throw identityErrors.mfaNotEnabled();
        return userRepository.revokeSessions(db, { userId });
      },
    );
    await this.#credentials.deleteIndexEntries(revoked);
  }

  /** Another account of the caller's tenant that the caller may manage; owners only by owners. */
  async #manageableUser(db: AnyKysely, principal: UserPrincipal, userId: string): Promise<User> {
    const target = await userRepository.findById(db, userId);
    if (!target) throw accessErrors.notFound();
    if (target.role === 'owner' && principal.role !== 'owner') throw accessErrors.forbidden();
    return target;
  }

  /** Every account of the caller's tenant (owners and admins). */
  async listUsers(principal: UserPrincipal): Promise<User[]> {
    authorize(principal, 'users.list', { tenantId: principal.tenantId, isProject: false });
    return this.#withTenant(principal.tenantId, (scope) => userRepository.list(scope.db), { readOnly: true });
  }

  /**
   * The principal behind a session token (`srt_…`) or an API key (`srk_…`), or undefined;
   * `tenant_suspended` if its tenant is. Served from the principal cache when it can be (every change
   * that could alter the answer clears it first, on every node); otherwise three database round trips.
   */
  async authenticate(token: string): Promise<Authenticated | undefined> {
    if (token.length > 200) return undefined;
    const kind = token.startsWith('srt_') ? 'session' : token.startsWith('srk_') ? 'api_key' : undefined;
    if (!kind) return undefined;
    const tokenHash = hashToken(token);
    const cached = await this.#principals.read(tokenHash);
    if (cached) return cached;
    const tenantId = await this.#credentials.findIndexedTenant(kind, tokenHash);
    if (!tenantId) return undefined;
    const tenant = await this.#tenants.findById(tenantId);
    if (!tenant || tenant.status === 'deleted') return undefined;
    if (tenant.status === 'suspended') throw identityErrors.tenantSuspended();
    if (kind === 'api_key') {
      const found = await this.#withTenant(
        tenantId,
        (scope) => userRepository.findActiveApiKey(scope.db, tokenHash),
        { readOnly: true },
      );
      if (!found) return undefined;
      // A key cannot enrol its user: until they do, a tenant that requires MFA refuses the key.
      if (found.mfaEnrollmentRequired) throw identityErrors.mfaEnrollmentRequired();
      const result: Authenticated = {
        principal: {
          kind: 'user',
          tenantId,
          userId: found.user.id,
          role: found.user.role,
          via: 'api_key',
          credentialId: found.key.id,
          scope: { access: found.key.access, projectIds: found.key.projectIds },
        },
        user: found.user,
      };
      await this.#principals.remember(tokenHash, result, found.key.expiresAt ?? farFuture);
      return result;
    }
    const session = await this.#withTenant(tenantId, async (scope) => {
      const found = await userRepository.findActiveSession(scope.db, tokenHash);
      if (found && this.#clock.now().getTime() - found.lastSeenAt.getTime() > touchIntervalMs) {
        await userRepository.touchSession(scope.db, found.sessionId, this.#policy.idleTimeoutMs);
      }
      return found;
    });
    if (!session) return undefined;
    const result: Authenticated = {
      principal: {
        kind: 'user',
        tenantId,
        userId: session.user.id,
        role: session.user.role,
        via: 'session',
        credentialId: session.sessionId,
        ...(session.mfaEnrollmentRequired ? { mfaEnrollmentRequired: true } : {}),
      },
      user: session.user,
    };
    // A user confined to enrolment is not cached: enrolling must open the rest at once.
    if (!session.mfaEnrollmentRequired)
      await this.#principals.remember(tokenHash, result, session.validUntil);
    return result;
  }

  /**
   * A new API key for the signed-in user: shown once, stored as SHA-256 with its prefix and last 4
   * characters. Only a session may create keys, so a key can never mint a broader key.
   */
  async createApiKey(
    principal: UserPrincipal,
    input: { name: string; access: 'read' | 'write'; projectIds?: string[]; expiresAt?: Date },
  ): Promise<{ key: ApiKey; secret: string }> {
    if (principal.via !== 'session') throw identityErrors.sessionRequired();
    const name = acceptDisplayName(input.name);
    if (input.expiresAt && input.expiresAt <= this.#clock.now()) throw identityErrors.invalidExpiry();
    const secret = generateToken('srk');
    const keyHash = hashToken(secret);
    const expiresAt = input.expiresAt ?? null;
    // The index entry expires with the key; a key without expiry is indexed for 100 years.
    const indexExpiry = expiresAt ?? new Date(this.#clock.now().getTime() + 100 * 365 * 24 * 60 * 60_000);
    await this.#credentials.insertIndexEntry('api_key', keyHash, principal.tenantId, indexExpiry);
    const key = await this.#withTenant(principal.tenantId, (scope) =>
      userRepository.insertApiKey(scope.db, {
        id: newId(),
        userId: principal.userId,
        name,
        keyHash,
        prefix: secret.slice(0, 8),
        last4: secret.slice(-4),
        access: input.access,
        projectIds: input.projectIds && input.projectIds.length > 0 ? [...new Set(input.projectIds)] : null,
        expiresAt,
      }),
    );
    return { key, secret };
  }

  async listApiKeys(principal: UserPrincipal): Promise<ApiKey[]> {
    return this.#withTenant(
      principal.tenantId,
      (scope) => userRepository.listApiKeys(scope.db, principal.userId),
      {
        readOnly: true,
      },
    );
  }

  /** Revokes one of the caller's own keys, at once on every node; another's key is not found. */
  async revokeApiKey(principal: UserPrincipal, keyId: string): Promise<void> {
    const revoked = await this.#changeAccess(
      principal.tenantId,
      async (db) => {
        const hash = await userRepository.apiKeyHash(db, principal.userId, keyId);
        return hash ? [hash] : [];
      },
      async (db) => {
        const hash = await userRepository.revokeApiKey(db, principal.userId, keyId);
        return hash ? [hash] : [];
      },
    );
    if (revoked.length === 0) throw accessErrors.notFound();
    await this.#credentials.deleteIndexEntries(revoked);
  }

  async logout(principal: UserPrincipal): Promise<void> {
    if (principal.via !== 'session') throw identityErrors.sessionRequired();
    const revoked = await this.#changeAccess(
      principal.tenantId,
      async (db) => {
        const hash = await userRepository.sessionHash(db, principal.credentialId);
        return hash ? [hash] : [];
      },
      (db) => userRepository.revokeSessions(db, { sessionId: principal.credentialId }),
    );
    await this.#credentials.deleteIndexEntries(revoked);
  }

  /** Ends every session of the caller, on every device, at once. Returns how many ended. */
  async logoutEverywhere(principal: UserPrincipal): Promise<number> {
    if (principal.via !== 'session') throw identityErrors.sessionRequired();
    const revoked = await this.#changeAccess(
      principal.tenantId,
      (db) => userRepository.credentialHashes(db, principal.userId),
      (db) => userRepository.revokeSessions(db, { userId: principal.userId }),
    );
    await this.#credentials.deleteIndexEntries(revoked);
    return revoked.length;
  }

  /**
   * A change to what credentials may do, made safe for the principal cache: the credentials `affected`
   * lists are cleared from the cache on every node before `change` commits (if the cache cannot be
   * written, nothing changes), and listed again after it, for any issued meanwhile.
   */
  async #changeAccess<T>(
    tenantId: string,
    affected: (db: AnyKysely) => Promise<Buffer[]>,
    change: (db: AnyKysely) => Promise<T>,
  ): Promise<T> {
    const list = () => this.#withTenant(tenantId, (scope) => affected(scope.db), { readOnly: true });
    await this.#principals.forget(await list());
    const result = await this.#withTenant(tenantId, (scope) => change(scope.db));
    // Best effort: the tombstones written before already cover everything that existed then.
    await list()
      .then((hashes) => this.#principals.forget(hashes))
      .catch(() => undefined);
    return result;
  }

  /**
   * Checks a one-time token of `purpose` (unknown, used, expired, another purpose or a deleted
   * tenant all answer `setup_token_invalid`), accepts the chosen name and password, and claims the
   * token: of two concurrent redemptions only one gets past the claim.
   */
  async #redeemToken(
    purpose: 'owner_setup' | 'invitation',
    input: { token: string; displayName: string; password: string },
  ) {
    const tokenHash = hashToken(input.token);
    const record = await this.#credentials.findSetupToken(tokenHash);
    // Purpose matters: an invitation token must never set up an owner, nor the reverse.
    if (
      !record ||
      record.purpose !== purpose ||
      record.usedAt !== null ||
      record.expiresAt <= this.#clock.now()
    ) {
      throw identityErrors.setupTokenInvalid();
    }
    const tenant = await this.#tenants.findById(record.tenantId);
    if (!tenant || tenant.status === 'deleted') throw identityErrors.setupTokenInvalid();
    if (tenant.status === 'suspended') throw identityErrors.tenantSuspended();
    const displayName = acceptDisplayName(input.displayName);
    const password = acceptNewPassword(input.password, {
      hasMfa: false,
      context: [record.email, record.email.split('@')[0] ?? '', tenant.slug, tenant.name ?? ''],
    });
    const passwordHash = await this.#hasher.hash(password);
    if (!(await this.#credentials.consumeSetupToken(tokenHash))) throw identityErrors.setupTokenInvalid();
    return { record, tenant, displayName, passwordHash };
  }

  async #startSession(
    tenantId: string,
    userId: string,
    source: { sourceIp?: string; userAgent?: string },
  ): Promise<IssuedSession> {
    const token = generateToken('srt');
    const tokenHash = hashToken(token);
    const now = this.#clock.now().getTime();
    const absoluteExpiresAt = new Date(now + this.#policy.absoluteTimeoutMs);
    const idleExpiresAt = new Date(Math.min(now + this.#policy.idleTimeoutMs, absoluteExpiresAt.getTime()));
    // Index first: a session row without its index entry would be unreachable, the reverse is harmless.
    await this.#credentials.insertIndexEntry('session', tokenHash, tenantId, absoluteExpiresAt);
    await this.#withTenant(tenantId, (scope) =>
      userRepository.insertSession(scope.db, {
        id: newId(),
        user_id: userId,
        token_hash: tokenHash,
        source_ip: source.sourceIp?.slice(0, 64) ?? null,
        user_agent: source.userAgent?.slice(0, 512) ?? null,
        idleExpiresAt,
        absoluteExpiresAt,
      }),
    );
    return { token, expiresAt: absoluteExpiresAt };
  }
}

function acceptDisplayName(name: unknown): string {
  if (typeof name !== 'string' || name.trim().length === 0 || name.length > 200 || /\p{Cc}/u.test(name)) {
    throw identityErrors.invalidDisplayName();
  }
  return name.trim();
}
