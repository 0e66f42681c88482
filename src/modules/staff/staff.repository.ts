import { type Kysely, sql } from 'kysely';
import type { ControlTables } from '../../db/control-tables.ts';
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

  /** Creates the person and their first key together, or neither. */
  async insertWithKey(member: StaffMember, key: StaffKeyRecord): Promise<void> {
    try {
      await this.#db.transaction().execute(async (trx) => {
        const control = trx.withSchema('control') as unknown as Kysely<ControlTables>;
        await control
          .insertInto('staff')
          .values({
            id: member.id,
            email: member.email,
            display_name: member.displayName,
            role: member.role,
            status: member.status,
          })
          .execute();
        await insertKey(control, key);
      });
    } catch (error) {
      if ((error as { code?: string }).code === '23505') throw staffErrors.emailTaken();
      throw error;
    }
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
  async disable(email: string): Promise<boolean> {
    const result = await this.#control
      .updateTable('staff')
      .set({ status: 'disabled' })
      .where('email', '=', email)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
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
