import { generateToken, hashToken } from '../../crypto/tokens.ts';
import { newId } from '../../platform/ids.ts';
import { normalizeEmail } from '../tenants/tenant-validation.ts';
import { staffErrors } from './staff.errors.ts';
import type { StaffMember, StaffRepository, StaffRole } from './staff.repository.ts';

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
  /** Shown once (`sro_…`); only its SHA-256 is stored. */
  apiKey: string;
}

/**
 * Platform staff: one account per person with a staff role. Until the identity issue adds MFA and
 * sessions, staff authenticate to the operator API with a per-person API key. A staff credential
 * opens no tenant data by itself.
 */
export class StaffService {
  readonly #staff: StaffRepository;

  constructor(deps: { staff: StaffRepository }) {
    this.#staff = deps.staff;
  }

  async create(input: {
    email: string;
    displayName: string;
    role: string;
    keyName?: string;
  }): Promise<CreatedStaff> {
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
    const apiKey = generateToken('sro');
    await this.#staff.insertWithKey(staff, {
      id: newId(),
      staffId: staff.id,
      name: input.keyName ?? 'initial',
      keyHash: hashToken(apiKey),
      prefix: apiKey.slice(0, 8),
      last4: apiKey.slice(-4),
      expiresAt: null,
    });
    return { staff, apiKey };
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

  async disable(email: string): Promise<void> {
    if (!(await this.#staff.disable(normalizeEmail(email, 'email')))) throw staffErrors.notFound();
  }

  async list(): Promise<StaffMember[]> {
    return this.#staff.list();
  }
}
