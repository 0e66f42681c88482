import { encodeAad } from '../../crypto/aead.ts';
import { generateToken, hashToken } from '../../crypto/tokens.ts';
import { matchTotpStep, newTotpSecret, totpUri } from '../../crypto/totp.ts';
import type { Clock } from '../../platform/clock.ts';
import { newId } from '../../platform/ids.ts';
import type { KeyProvider } from '../keys/key-provider.port.ts';
import { normalizeEmail } from '../tenants/tenant-validation.ts';
import { staffErrors } from './staff.errors.ts';
import type {
  StaffKeyRecord,
  StaffMember,
  StaffRepository,
  StaffRole,
  StaffWithMfa,
} from './staff.repository.ts';

export const staffRoles: readonly StaffRole[] = ['operator', 'support', 'security', 'developer'];

/** Who is calling the operator API: a staff member, identified by one of their keys. */
export interface StaffPrincipal {
  kind: 'staff';
  staffId: string;
  keyId: string;
  role: StaffRole;
  email: string;
}

export interface CreatedStaff {
  staff: StaffMember;
  /**
   * Shown once (`srs_…`, 72 hours): the person redeems it to enrol their authenticator and receive
   * their first API key. Only its SHA-256 is stored.
   */
  setupToken: string;
  setupExpiresAt: Date;
}

/** Failed-attempt throttling, as the identity module's login throttle provides it. */
export interface CodeThrottle {
  guard(subject: { tenant: string; email: string }, attempt: () => Promise<boolean>): Promise<boolean>;
}

/** How long a staff setup token stays valid. */
const setupTtlMs = 72 * 60 * 60_000;

/**
 * Platform staff: one account per person with a staff role, MFA mandatory. An operator creates the
 * account (`strongroom staff create`), which yields a one-time setup token for that person; they
 * redeem it to enrol a TOTP authenticator, and only a confirmed code gives them their first API key
 * (`sro_…`). Every further key also takes a current code. A key opens nothing while its owner has no
 * confirmed MFA, and a staff credential opens no tenant data by itself.
 */
export class StaffService {
  readonly #staff: StaffRepository;
  readonly #keys: KeyProvider;
  readonly #clock: Clock;
  readonly #throttle: CodeThrottle;

  constructor(deps: {
    staff: StaffRepository;
    keyProvider: KeyProvider;
    clock: Clock;
    throttle: CodeThrottle;
  }) {
    this.#staff = deps.staff;
    this.#keys = deps.keyProvider;
    this.#clock = deps.clock;
    this.#throttle = deps.throttle;
  }

  async create(input: { email: string; displayName: string; role: string }): Promise<CreatedStaff> {
    const email = normalizeEmail(input.email, 'email');
    if (!staffRoles.includes(input.role as StaffRole)) throw staffErrors.invalidRole();
    const displayName = input.displayName.trim();
    if (displayName.length === 0 || displayName.length > 200 || /\p{Cc}/u.test(displayName)) {
      throw staffErrors.invalidName();
    }
    const staff: StaffMember = {
      id: newId(),
      email,
      displayName,
      role: input.role as StaffRole,
      status: 'active',
    };
    const setupToken = generateToken('srs');
    const setupExpiresAt = new Date(this.#clock.now().getTime() + setupTtlMs);
    await this.#staff.insert(staff, { tokenHash: hashToken(setupToken), expiresAt: setupExpiresAt });
    return { staff, setupToken, setupExpiresAt };
  }

  /** Step 1 of setup: a new TOTP secret to scan (restartable until confirmed). */
  async beginSetup(token: string): Promise<{ secret: string; otpauthUri: string }> {
    const member = await this.#staff.findBySetupToken(hashToken(token));
    if (!member) throw staffErrors.setupTokenInvalid();
    const secret = newTotpSecret();
    const wrapped = await this.#keys.wrap(Buffer.from(secret, 'utf8'), secretAad(member.id));
    await this.#staff.storePendingSecret(member.id, {
      kekId: wrapped.kekId,
      wrapped: Buffer.from(wrapped.ciphertext),
    });
    return { secret, otpauthUri: totpUri(`${member.email} (staff)`, secret) };
  }

  /** Step 2: a current code confirms the authenticator, spends the token and yields the first key. */
  async completeSetup(token: string, code: string, keyName = 'initial'): Promise<{ apiKey: string }> {
    const tokenHash = hashToken(token);
    const member = await this.#staff.findBySetupToken(tokenHash);
    if (!member) throw staffErrors.setupTokenInvalid();
    if (!member.mfaSecret) throw staffErrors.setupNotStarted();
    if (!(await this.#acceptCode(member, code))) throw staffErrors.invalidMfaCode();
    const { apiKey, record } = newStaffKey(member.id, keyName, null);
    if (!(await this.#staff.completeSetup(member.id, tokenHash, record)))
      throw staffErrors.setupTokenInvalid();
    return { apiKey };
  }

  /** Another key for the calling staff member, proven with a current code (shown once). */
  async createKey(
    principal: StaffPrincipal,
    input: { name: string; code: string; expiresAt?: Date },
  ): Promise<{ apiKey: string; id: string; expiresAt: Date | null }> {
    const name = input.name.trim();
    if (name.length === 0 || name.length > 200 || /\p{Cc}/u.test(name)) throw staffErrors.invalidName();
    if (input.expiresAt && input.expiresAt <= this.#clock.now()) throw staffErrors.invalidExpiry();
    const member = await this.#staff.findWithMfa(principal.staffId);
    if (!member?.mfaEnabled) throw staffErrors.unauthenticated();
    if (!(await this.#acceptCode(member, input.code))) throw staffErrors.invalidMfaCode();
    const { apiKey, record } = newStaffKey(member.id, name, input.expiresAt ?? null);
    await this.#staff.insertKey(record);
    return { apiKey, id: record.id, expiresAt: record.expiresAt };
  }

  /**
   * Lost authenticator (`strongroom staff reset-mfa`): MFA off, every key revoked at once, and a new
   * setup token for the person to enrol again.
   */
  async resetMfa(email: string): Promise<CreatedStaff> {
    const setupToken = generateToken('srs');
    const setupExpiresAt = new Date(this.#clock.now().getTime() + setupTtlMs);
    const staff = await this.#staff.resetMfa(normalizeEmail(email, 'email'), {
      tokenHash: hashToken(setupToken),
      expiresAt: setupExpiresAt,
    });
    if (!staff) throw staffErrors.notFound();
    const { mfaSecret: _secret, mfaEnabled: _enabled, ...member } = staff as StaffWithMfa;
    return { staff: member, setupToken, setupExpiresAt };
  }

  /** Re-wraps every staff TOTP secret under the current master key (part of `keys rotate-master`). */
  async rewrapSecrets(): Promise<number> {
    const pending = await this.#staff.secretsNotUnder(this.#keys.currentKekId);
    for (const row of pending) {
      const secret = await this.#keys.unwrap(
        { kekId: row.kekId, ciphertext: row.wrapped },
        secretAad(row.id),
      );
      const wrapped = await this.#keys.wrap(secret, secretAad(row.id));
      await this.#staff.rewrapSecret(row.id, row.kekId, {
        kekId: wrapped.kekId,
        wrapped: Buffer.from(wrapped.ciphertext),
      });
    }
    return pending.length;
  }

  /**
   * Throttled like a login (backoff after 5 wrong codes, locked for an hour after 100), so neither a
   * leaked setup token nor a stolen key can guess its way to a new key.
   */
  async #acceptCode(member: StaffWithMfa, code: string): Promise<boolean> {
    const sealed = member.mfaSecret;
    if (!sealed) return false;
    return this.#throttle.guard({ tenant: 'staff', email: member.id }, async () => {
      const secret = await this.#keys.unwrap(
        { kekId: sealed.kekId, ciphertext: sealed.wrapped },
        secretAad(member.id),
      );
      const step = await matchTotpStep(secret.toString('utf8'), code);
      return step !== undefined && (await this.#staff.claimStep(member.id, step));
    });
  }

  /**
   * Looks the key up by its SHA-256. An equality lookup on a hash of a 256-bit random secret leaks
   * nothing useful through timing: an attacker cannot steer the hash towards a stored one.
   */
  async authenticate(apiKey: string): Promise<StaffPrincipal | undefined> {
    if (!apiKey.startsWith('sro_') || apiKey.length > 200) return undefined;
    const found = await this.#staff.findActiveByKeyHash(hashToken(apiKey));
    return (
      found && { kind: 'staff', staffId: found.id, keyId: found.keyId, role: found.role, email: found.email }
    );
  }

  /** Returns the disabled member's id. */
  async disable(email: string): Promise<string> {
    const id = await this.#staff.disable(normalizeEmail(email, 'email'));
    if (!id) throw staffErrors.notFound();
    return id;
  }

  async list(): Promise<StaffMember[]> {
    return this.#staff.list();
  }
}

/** The TOTP secret is bound to its person: a wrapped secret copied to another row does not unwrap. */
function secretAad(staffId: string): Uint8Array {
  return encodeAad(['strongroom/staff-totp/v1', staffId]);
}

function newStaffKey(
  staffId: string,
  name: string,
  expiresAt: Date | null,
): { apiKey: string; record: StaffKeyRecord } {
  const apiKey = generateToken('sro');
  return {
    apiKey,
    record: {
      id: newId(),
      staffId,
      name,
      keyHash: hashToken(apiKey),
      prefix: apiKey.slice(0, 8),
      last4: apiKey.slice(-4),
      expiresAt,
    },
  };
}
