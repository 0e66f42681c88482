import type { Kysely } from 'kysely';
import type { ControlTables } from '../../db/control-tables.ts';

export interface WrappedDataKeyRow {
  tenantId: string;
  version: number;
  kekId: string;
  wrapped: Buffer;
}

/** Wrapped tenant data keys and the master-key canary, in the control plane. */
export class TenantKeysRepository {
  readonly #control: Kysely<ControlTables>;

  constructor(control: Kysely<ControlTables>) {
    this.#control = control;
  }

  async insert(row: WrappedDataKeyRow, control: Kysely<ControlTables> = this.#control): Promise<void> {
    await control
      .insertInto('tenant_keys')
      .values({ tenant_id: row.tenantId, version: row.version, kek_id: row.kekId, wrapped: row.wrapped })
      .execute();
  }

  /** The newest version when `version` is undefined. */
  async find(tenantId: string, version?: number): Promise<WrappedDataKeyRow | undefined> {
    let query = this.#control
      .selectFrom('tenant_keys')
      .select(['tenant_id', 'version', 'kek_id', 'wrapped'])
      .where('tenant_id', '=', tenantId);
    query =
      version === undefined
        ? query.orderBy('version', 'desc').limit(1)
        : query.where('version', '=', version);
    const row = await query.executeTakeFirst();
    return row && toRow(row);
  }

  async deleteForTenant(tenantId: string, control: Kysely<ControlTables> = this.#control): Promise<void> {
    await control.deleteFrom('tenant_keys').where('tenant_id', '=', tenantId).execute();
  }

  /** A page of keys not wrapped by `kekId`, in a stable order, for rewrapping. */
  async listNotWrappedBy(kekId: string, limit: number): Promise<WrappedDataKeyRow[]> {
    const rows = await this.#control
      .selectFrom('tenant_keys')
      .select(['tenant_id', 'version', 'kek_id', 'wrapped'])
      .where('kek_id', '<>', kekId)
      .orderBy('tenant_id')
      .orderBy('version')
      .limit(limit)
      .execute();
    return rows.map(toRow);
  }

  async countNotWrappedBy(kekId: string): Promise<number> {
    const row = await this.#control
      .selectFrom('tenant_keys')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .where('kek_id', '<>', kekId)
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  /** Compare-and-set on the old KEK id, so a concurrent rotation never double-wraps a key. */
  async replaceWrapping(old: WrappedDataKeyRow, kekId: string, wrapped: Buffer): Promise<boolean> {
    const result = await this.#control
      .updateTable('tenant_keys')
      .set({ kek_id: kekId, wrapped, rewrapped_at: new Date() })
      .where('tenant_id', '=', old.tenantId)
      .where('version', '=', old.version)
      .where('kek_id', '=', old.kekId)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async findKeyCheck(): Promise<{ kekId: string; sealed: Buffer } | undefined> {
    const row = await this.#control
      .selectFrom('key_check')
      .select(['kek_id', 'sealed'])
      .where('id', '=', 1)
      .executeTakeFirst();
    return row && { kekId: row.kek_id, sealed: Buffer.from(row.sealed) };
  }

  async upsertKeyCheck(kekId: string, sealed: Buffer): Promise<void> {
    await this.#control
      .insertInto('key_check')
      .values({ id: 1, kek_id: kekId, sealed })
      .onConflict((oc) => oc.column('id').doUpdateSet({ kek_id: kekId, sealed }))
      .execute();
  }
}

function toRow(row: {
  tenant_id: string;
  version: number;
  kek_id: string;
  wrapped: Uint8Array;
}): WrappedDataKeyRow {
  return {
    tenantId: row.tenant_id,
    version: row.version,
    kekId: row.kek_id,
    wrapped: Buffer.from(row.wrapped),
  };
}
