import { type Kysely, sql } from 'kysely';
import type { ControlTables } from '../../db/control-tables.ts';

export interface SetupTokenRecord {
  purpose: 'owner_setup' | 'invitation';
  tenantId: string;
  email: string;
  expiresAt: Date;
  usedAt: Date | null;
}

/** Control-plane credential records: owner setup tokens, and the token-hash → tenant index. */
export class CredentialsRepository {
  readonly #control: Kysely<ControlTables>;

  constructor(control: Kysely<ControlTables>) {
    this.#control = control;
  }

  async findSetupToken(tokenHash: Buffer): Promise<SetupTokenRecord | undefined> {
    const row = await this.#control
      .selectFrom('setup_tokens')
      .select(['purpose', 'tenant_id', 'email', 'expires_at', 'used_at'])
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    return (
      row && {
        purpose: row.purpose,
        tenantId: row.tenant_id,
        email: row.email,
        expiresAt: new Date(row.expires_at),
        usedAt: row.used_at === null ? null : new Date(row.used_at),
      }
    );
  }

  /** Marks the token used; false if it was already used (a concurrent setup won). */
  async consumeSetupToken(tokenHash: Buffer): Promise<boolean> {
    const result = await this.#control
      .updateTable('setup_tokens')
      .set({ used_at: sql`now()` })
      .where('token_hash', '=', tokenHash)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async insertInvitation(tokenHash: Buffer, tenantId: string, email: string, expiresAt: Date): Promise<void> {
    await this.#control
      .insertInto('setup_tokens')
      .values({
        token_hash: tokenHash,
        tenant_id: tenantId,
        purpose: 'invitation',
        email,
        expires_at: expiresAt,
      })
      .execute();
  }

  async deleteSetupToken(tokenHash: Buffer): Promise<void> {
    await this.#control.deleteFrom('setup_tokens').where('token_hash', '=', tokenHash).execute();
  }

  async insertIndexEntry(
    kind: 'session' | 'api_key',
    tokenHash: Buffer,
    tenantId: string,
    expiresAt: Date,
  ): Promise<void> {
    await this.#control
      .insertInto('credentials')
      .values({ token_hash: tokenHash, kind, tenant_id: tenantId, expires_at: expiresAt })
      .execute();
  }

  /** The tenant a live credential (session token or API key) belongs to. */
  async findIndexedTenant(kind: 'session' | 'api_key', tokenHash: Buffer): Promise<string | undefined> {
    const row = await this.#control
      .selectFrom('credentials')
      .select('tenant_id')
      .where('token_hash', '=', tokenHash)
      .where('kind', '=', kind)
      .where('expires_at', '>', sql<Date>`now()`)
      .executeTakeFirst();
    return row?.tenant_id;
  }

  /** Every live credential of a tenant (for clearing the principal cache tenant-wide). */
  async liveHashesOfTenant(tenantId: string): Promise<Buffer[]> {
    const rows = await this.#control
      .selectFrom('credentials')
      .select('token_hash')
      .where('tenant_id', '=', tenantId)
      .where('expires_at', '>', sql<Date>`now()`)
      .execute();
    return rows.map((r) => Buffer.from(r.token_hash));
  }

  async deleteIndexEntries(tokenHashes: Buffer[]): Promise<void> {
    if (tokenHashes.length === 0) return;
    await this.#control.deleteFrom('credentials').where('token_hash', 'in', tokenHashes).execute();
  }
}
