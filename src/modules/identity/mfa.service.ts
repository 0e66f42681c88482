import { createHash, randomBytes } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { decryptField, encryptField, readFieldKeyVersion } from '../../crypto/field.ts';
import { matchTotpStep, newTotpSecret, totpUri } from '../../crypto/totp.ts';
import type { AnyKysely } from '../../db/database.ts';
import type { TenantTables } from '../../db/tenant-tables.ts';
import type { WithTenant } from '../../db/with-tenant.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import { identityErrors } from './identity.errors.ts';
import type { UserPrincipal } from './identity.service.ts';
import type { LoginThrottle } from './login-throttle.ts';

/** How many one-time recovery codes an enrolment yields. */
export const recoveryCodeCount = 10;

/**
 * TOTP (RFC 6238: SHA-1, 6 digits, 30 s, as authenticator apps expect) with a window of ±1 step, a
 * used code never accepted twice (the last accepted step is stored and compared atomically), and 10
 * single-use recovery codes stored as SHA-256. The TOTP secret is stored encrypted with the tenant's
 * data key, bound to the user's row.
 */
export class MfaService {
  readonly #withTenant: WithTenant;
  readonly #keys: TenantKeyService;
  readonly #throttle: LoginThrottle;

  constructor(deps: { withTenant: WithTenant; keys: TenantKeyService; throttle: LoginThrottle }) {
    this.#withTenant = deps.withTenant;
    this.#keys = deps.keys;
    this.#throttle = deps.throttle;
  }

  /** Starts (or restarts) enrolment: a new secret to scan; MFA is on only after `confirm`. */
  async enroll(principal: UserPrincipal, label: string): Promise<{ secret: string; otpauthUri: string }> {
    if (principal.via !== 'session') throw identityErrors.sessionRequired();
    const secret = newTotpSecret();
    const key = await this.#keys.getDataKey(principal.tenantId);
    const sealed = encryptField(key, secret, this.#context(principal));
    await this.#withTenant(principal.tenantId, async (scope) => {
      const result = await tenant(scope.db)
        .updateTable('users')
        .set({ mfa_secret: sealed, mfa_last_step: null })
        .where('id', '=', principal.userId)
        .where('mfa_enabled_at', 'is', null)
        .executeTakeFirst();
      if (result.numUpdatedRows === 0n) throw identityErrors.mfaAlreadyEnabled();
    });
    return { secret, otpauthUri: totpUri(label, secret) };
  }

  /** The first valid code turns MFA on; returns the recovery codes, shown this once. */
  async confirm(principal: UserPrincipal, code: string): Promise<{ recoveryCodes: string[] }> {
    if (principal.via !== 'session') throw identityErrors.sessionRequired();
    return this.#withTenant(principal.tenantId, async (scope) => {
      const row = await readMfaState(scope.db, principal.userId);
      if (row.mfa_enabled_at !== null) throw identityErrors.mfaAlreadyEnabled();
      if (row.mfa_secret === null) throw identityErrors.mfaNotEnrolled();
      await this.#guardedTotp(scope.db, principal, row.mfa_secret, code);
      const codes = await replaceRecoveryCodes(scope.db, principal.userId);
      await tenant(scope.db)
        .updateTable('users')
        .set({ mfa_enabled_at: sql`now()` })
        .where('id', '=', principal.userId)
        .execute();
      return { recoveryCodes: codes };
    });
  }

  /**
   * A fresh set of recovery codes, proven with a current TOTP code; every earlier code stops working.
   * For when the codes were used up, lost or seen by someone else.
   */
  async regenerateRecoveryCodes(
    principal: UserPrincipal,
    code: string,
  ): Promise<{ recoveryCodes: string[] }> {
    if (principal.via !== 'session') throw identityErrors.sessionRequired();
    return this.#withTenant(principal.tenantId, async (scope) => {
      const row = await readMfaState(scope.db, principal.userId);
      if (row.mfa_enabled_at === null || row.mfa_secret === null) throw identityErrors.mfaNotEnabled();
      await this.#guardedTotp(scope.db, principal, row.mfa_secret, code);
      return { recoveryCodes: await replaceRecoveryCodes(scope.db, principal.userId) };
    });
  }

  /**
   * The second factor at login, inside the caller's tenant transaction: a TOTP code (not replayed)
   * or an unused recovery code, which is then spent.
   */
  async verifySecondFactor(
    db: AnyKysely,
    tenantId: string,
    user: { id: string; mfaSecret: string },
    proof: { totp?: string | undefined; recoveryCode?: string | undefined },
  ): Promise<boolean> {
    if (proof.totp !== undefined) return this.#acceptTotp(db, tenantId, user.id, user.mfaSecret, proof.totp);
    if (proof.recoveryCode === undefined) return false;
    const spent = await tenant(db)
      .updateTable('mfa_recovery_codes')
      .set({ used_at: sql`now()` })
      .where('user_id', '=', user.id)
      .where('code_hash', '=', hashRecoveryCode(proof.recoveryCode))
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return spent.numUpdatedRows > 0n;
  }

  /**
   * A code typed by a signed-in user (enrolment, new recovery codes), throttled like a login: after 5
   * wrong codes each try waits twice as long, after 100 the account's codes are locked for an hour,
   * so a stolen session cannot guess its way to a second factor. Throws `invalid_mfa_code`.
   */
  async #guardedTotp(db: AnyKysely, principal: UserPrincipal, sealed: string, code: string): Promise<void> {
    const accepted = await this.#throttle.guard(
      { tenant: `mfa/${principal.tenantId}`, email: principal.userId },
      () => this.#acceptTotp(db, principal.tenantId, principal.userId, sealed, code),
    );
    if (!accepted) throw identityErrors.invalidMfaCode();
  }

  async #acceptTotp(
    db: AnyKysely,
    tenantId: string,
    userId: string,
    sealed: string,
    code: string,
  ): Promise<boolean> {
    const key = await this.#keys.getDataKey(tenantId, readFieldKeyVersion(sealed));
    const secret = decryptField(() => key.bytes, sealed, {
      tenantId,
      table: 'users',
      column: 'mfa_secret',
      rowId: userId,
    });
    const step = await matchTotpStep(secret, code);
    if (step === undefined) return false;
    // Accept each step once: the compare-and-set fails for a replay, even from two nodes at once.
    const claimed = await tenant(db)
      .updateTable('users')
      .set({ mfa_last_step: step })
      .where('id', '=', userId)
      .where((eb) => eb.or([eb('mfa_last_step', 'is', null), eb('mfa_last_step', '<', String(step))]))
      .executeTakeFirst();
    return claimed.numUpdatedRows > 0n;
  }

  #context(principal: UserPrincipal) {
    return { tenantId: principal.tenantId, table: 'users', column: 'mfa_secret', rowId: principal.userId };
  }
}

/** The user's sealed TOTP secret and when MFA was turned on (null: not yet). */
function readMfaState(db: AnyKysely, userId: string) {
  return tenant(db)
    .selectFrom('users')
    .select(['mfa_secret', 'mfa_enabled_at'])
    .where('id', '=', userId)
    .executeTakeFirstOrThrow();
}

/** Replaces the user's recovery codes with `recoveryCodeCount` new ones, returned in the clear once. */
async function replaceRecoveryCodes(db: AnyKysely, userId: string): Promise<string[]> {
  const codes = Array.from({ length: recoveryCodeCount }, newRecoveryCode);
  await tenant(db).deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).execute();
  await tenant(db)
    .insertInto('mfa_recovery_codes')
    .values(codes.map((c) => ({ user_id: userId, code_hash: hashRecoveryCode(c) })))
    .execute();
  return codes;
}

/** 80 random bits as 4 groups of 4 characters, like `K7QF-3MZA-PX2D-9WRT`. */
function newRecoveryCode(): string {
  // 32 symbols without look-alikes (no I, O, 0, 1): 256 % 32 = 0, so each byte maps uniformly.
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const bytes = randomBytes(16);
  const chars = Array.from({ length: 16 }, (_, i) => alphabet[bytes[i]! % 32]!);
  return [0, 4, 8, 12].map((i) => chars.slice(i, i + 4).join('')).join('-');
}

/** Codes are compared case- and dash-insensitively, and stored only as SHA-256 (80 random bits). */
function hashRecoveryCode(code: string): Buffer {
  return createHash('sha256')
    .update(code.toUpperCase().replaceAll(/[^A-Z0-9]/g, ''))
    .digest();
}

function tenant(db: AnyKysely): Kysely<TenantTables> {
  return db as Kysely<TenantTables>;
}
