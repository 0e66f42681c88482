import { type Kysely, type Selectable, sql } from 'kysely';
import type { ControlTables, StaffTable } from '../../db/control-tables.ts';
import type { AnyKysely } from '../../db/database.ts';
import { staffErrors } from './staff.errors.ts';

export type StaffRole = 'operator' | 'support' | 'security' | 'developer';

export interface StaffMember {
  id: string;
  email: string;
  displayName: string;
  role: StaffRole;
  status: 'active' | 'disabled';
}

export interface StaffWithMfa extends StaffMember {
  mfaSecret: { kekId: string; wrapped: Buffer } | null;
  mfaEnabled: boolean;
}

export interface StaffKeyRecord {
  id: string;
  staffId: string;
  name: string;
  keyHash: Buffer;
  prefix: string;
  last4: string;
  expiresAt: Date | null;
}

/** Platform staff and their API keys (stored only as SHA-256), in the control plane. */
export class StaffRepository {
  readonly #control: Kysely<ControlTables>;
  readonly #db: AnyKysely;

  constructor(deps: { control: Kysely<ControlTables>; db: AnyKysely }) {
    this.#control = deps.control;
    this.#db = deps.db;
  }

  /** Creates the person, not yet enrolled, with a one-time setup token (by its hash). */
  async insert(member: StaffMember, setup: { tokenHash: Buffer; expiresAt: Date }): Promise<void> {
    try {
      await this.#control
        .insertInto('staff')
        .values({
          id: member.id,
          email: member.email,
          display_name: member.displayName,
          role: member.role,
          status: member.status,
          setup_token_hash: setup.tokenHash,
          setup_expires_at: setup.expiresAt,
        })
        .execute();
    } catch (error) {
      if ((error as { code?: string }).code === '23505') throw staffErrors.emailTaken();
      throw error;
    }
  }

  /** The active person a live (unexpired) setup token belongs to. */
  async findBySetupToken(tokenHash: Buffer): Promise<StaffWithMfa | undefined> {
    const row = await this.#control
      .selectFrom('staff')
      .selectAll()
      .where('setup_token_hash', '=', tokenHash)
      .where('setup_expires_at', '>', sql<Date>`now()`)
      .where('status', '=', 'active')
      .executeTakeFirst();
    return row && toStaffWithMfa(row);
  }

  async findWithMfa(staffId: string): Promise<StaffWithMfa | undefined> {
    const row = await this.#control
      .selectFrom('staff')
      .selectAll()
      .where('id', '=', staffId)
      .executeTakeFirst();
    return row && toStaffWithMfa(row);
  }

  /** Stores a new (not yet confirmed) wrapped TOTP secret during setup. */
  async storePendingSecret(staffId: string, secret: { kekId: string; wrapped: Buffer }): Promise<void> {
    await this.#control
      .updateTable('staff')
      .set({ mfa_secret: secret.wrapped, mfa_kek_id: secret.kekId, mfa_last_step: null })
      .where('id', '=', staffId)
      .where('mfa_enabled_at', 'is', null)
      .execute();
  }

  /**
   * Accepts TOTP step `step` once: a compare-and-set on the last accepted step, so a replayed code
   * fails even on two nodes at once.
   */
  async claimStep(staffId: string, step: number): Promise<boolean> {
    const result = await this.#control
      .updateTable('staff')
      .set({ mfa_last_step: step })
      .where('id', '=', staffId)
      .where((eb) => eb.or([eb('mfa_last_step', 'is', null), eb('mfa_last_step', '<', String(step))]))
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Ends setup: MFA on, the setup token spent, the first key stored. One transaction; false if the
   * token was spent meanwhile (a concurrent confirmation won).
   */
  async completeSetup(staffId: string, tokenHash: Buffer, key: StaffKeyRecord): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      const control = trx.withSchema('control') as unknown as Kysely<ControlTables>;
      const claimed = await control
        .updateTable('staff')
        .set({ mfa_enabled_at: sql`now()`, setup_token_hash: null, setup_expires_at: null })
        .where('id', '=', staffId)
        .where('setup_token_hash', '=', tokenHash)
        .executeTakeFirst();
      if (claimed.numUpdatedRows === 0n) return false;
      await insertKey(control, key);
      return true;
    });
  }

  async insertKey(key: StaffKeyRecord): Promise<void> {
    await insertKey(this.#control, key);
  }

  /**
   * Lost phone: MFA off, every key revoked, a new setup token. One transaction. Undefined if there
   * is no such person.
   */
  async resetMfa(
    email: string,
    setup: { tokenHash: Buffer; expiresAt: Date },
  ): Promise<StaffMember | undefined> {
    return this.#db.transaction().execute(async (trx) => {
      const control = trx.withSchema('control') as unknown as Kysely<ControlTables>;
      const row = await control
        .updateTable('staff')
        .set({
          mfa_secret: null,
          mfa_kek_id: null,
          mfa_enabled_at: null,
          mfa_last_step: null,
          setup_token_hash: setup.tokenHash,
          setup_expires_at: setup.expiresAt,
        })
        .where('email', '=', email)
        .returningAll()
        .executeTakeFirst();
      if (!row) return undefined;
      await control
        .updateTable('staff_keys')
        .set({ revoked_at: sql`now()` })
        .where('staff_id', '=', row.id)
        .where('revoked_at', 'is', null)
        .execute();
      return toStaffWithMfa(row);
    });
  }

  /** Secrets still wrapped under another master key than `kekId` (for master-key rotation). */
  async secretsNotUnder(kekId: string): Promise<Array<{ id: string; kekId: string; wrapped: Buffer }>> {
    const rows = await this.#control
      .selectFrom('staff')
      .select(['id', 'mfa_kek_id', 'mfa_secret'])
      .where('mfa_secret', 'is not', null)
      .where('mfa_kek_id', '<>', kekId)
      .execute();
    return rows.map((r) => ({ id: r.id, kekId: r.mfa_kek_id!, wrapped: Buffer.from(r.mfa_secret!) }));
  }

  /** Replaces a wrapped secret if it is still the one read (compare-and-set on the KEK id). */
  async rewrapSecret(
    staffId: string,
    fromKekId: string,
    secret: { kekId: string; wrapped: Buffer },
  ): Promise<void> {
    await this.#control
      .updateTable('staff')
      .set({ mfa_secret: secret.wrapped, mfa_kek_id: secret.kekId })
      .where('id', '=', staffId)
      .where('mfa_kek_id', '=', fromKekId)
      .execute();
  }

  /** The key's owner, if the key is live (not revoked, not expired) and its owner active. */
  async findActiveByKeyHash(keyHash: Buffer): Promise<(StaffMember & { keyId: string }) | undefined> {
    const row = await this.#control
      .selectFrom('staff_keys as k')
      .innerJoin('staff as s', 's.id', 'k.staff_id')
      .select(['s.id', 's.email', 's.display_name', 's.role', 's.status', 'k.id as key_id'])
      .where('k.key_hash', '=', keyHash)
      .where('k.revoked_at', 'is', null)
      .where((eb) => eb.or([eb('k.expires_at', 'is', null), eb('k.expires_at', '>', sql<Date>`now()`)]))
      .where('s.status', '=', 'active')
      // MFA is mandatory for staff: a key opens nothing unless its owner's enrolment is confirmed.
      .where('s.mfa_enabled_at', 'is not', null)
      .executeTakeFirst();
    return (
      row && {
        id: row.id,
        email: row.email,
        displayName: row.display_name,
        role: row.role,
        status: row.status,
        keyId: row.key_id,
      }
    );
  }

  /** Disables the person; their keys stop working on the next request. False if unknown. */
  /** The disabled member's id; undefined if nobody has that email. */
  async disable(email: string): Promise<string | undefined> {
    const row = await this.#control
      .updateTable('staff')
      .set({ status: 'disabled' })
      .where('email', '=', email)
      .returning('id')
      .executeTakeFirst();
    return row?.id;
  }

  async list(): Promise<StaffMember[]> {
    const rows = await this.#control.selectFrom('staff').selectAll().orderBy('email').execute();
    return rows.map((r) => ({
      id: r.id,
      email: r.email,
      displayName: r.display_name,
      role: r.role,
      status: r.status,
    }));
  }
}

async function insertKey(control: Kysely<ControlTables>, key: StaffKeyRecord): Promise<void> {
  await control
    .insertInto('staff_keys')
    .values({
      id: key.id,
      staff_id: key.staffId,
      name: key.name,
      key_hash: key.keyHash,
      prefix: key.prefix,
      last4: key.last4,
      expires_at: key.expiresAt,
    })
    .execute();
}

function toStaffWithMfa(row: Selectable<StaffTable>): StaffWithMfa {
  return {
    id: row.id,
    email: row.email,
    displayName: row.display_name,
    role: row.role,
    status: row.status,
    mfaSecret:
      row.mfa_secret && row.mfa_kek_id
        ? { kekId: row.mfa_kek_id, wrapped: Buffer.from(row.mfa_secret) }
        : null,
    mfaEnabled: row.mfa_enabled_at !== null,
  };
}
