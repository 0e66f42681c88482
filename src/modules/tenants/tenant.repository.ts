import { type Kysely, type Selectable, sql } from 'kysely';
import type { ControlTables, TenantsTable } from '../../db/control-tables.ts';
import { tenantErrors } from './tenant.errors.ts';

export type TenantStatus = 'active' | 'suspended' | 'deleted';

export interface Tenant {
  id: string;
  slug: string;
  name: string | null;
  status: TenantStatus;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
  schemaVersion: string | null;
  migrationStatus: 'ok' | 'failed';
  migrationError: string | null;
  migratedAt: Date | null;
}

/** Tenants and their one-time setup tokens, in the control plane. */
export class TenantRepository {
  readonly #control: Kysely<ControlTables>;

  constructor(control: Kysely<ControlTables>) {
    this.#control = control;
  }

  async insert(
    control: Kysely<ControlTables>,
    tenant: { id: string; slug: string; name: string; schemaVersion: string | null },
  ): Promise<Tenant> {
    try {
      const row = await control
        .insertInto('tenants')
        .values({
          id: tenant.id,
          slug: tenant.slug,
          name: tenant.name,
          status: 'active',
          updated_at: sql`now()`,
          schema_version: tenant.schemaVersion,
          migration_status: 'ok',
          migrated_at: sql`now()`,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toTenant(row);
    } catch (error) {
      // 23505 unique_violation on the live-slug index: translate, don't leak the constraint.
      if ((error as { code?: string }).code === '23505') throw tenantErrors.slugTaken(tenant.slug);
      throw error;
    }
  }

  async findById(id: string, control: Kysely<ControlTables> = this.#control): Promise<Tenant | undefined> {
    const row = await control.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toTenant(row);
  }

  /** Locks the row for the rest of the caller's transaction (deletion, state changes). */
  async findByIdForUpdate(control: Kysely<ControlTables>, id: string): Promise<Tenant | undefined> {
    const row = await control
      .selectFrom('tenants')
      .selectAll()
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    return row && toTenant(row);
  }

  async findLiveBySlug(slug: string): Promise<Tenant | undefined> {
    const row = await this.#control
      .selectFrom('tenants')
      .selectAll()
      .where('slug', '=', slug)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    return row && toTenant(row);
  }

  /** Ids of every tenant not deleted, read page by page (what the per-tenant jobs walk). */
  async listLiveIds(): Promise<string[]> {
    const pageSize = 100;
    const ids: string[] = [];
    for (let afterId: string | undefined; ; ) {
      const page = await this.list({ includeDeleted: false, limit: pageSize, afterId });
      ids.push(...page.map((tenant) => tenant.id));
      if (page.length < pageSize) return ids;
      afterId = page.at(-1)!.id;
    }
  }

  async list(options: {
    includeDeleted: boolean;
    limit: number;
    afterId?: string | undefined;
  }): Promise<Tenant[]> {
    let query = this.#control.selectFrom('tenants').selectAll().orderBy('id').limit(options.limit);
    if (!options.includeDeleted) query = query.where('deleted_at', 'is', null);
    if (options.afterId !== undefined) query = query.where('id', '>', options.afterId);
    return (await query.execute()).map(toTenant);
  }

  async setStatus(
    control: Kysely<ControlTables>,
    id: string,
    status: 'active' | 'suspended',
  ): Promise<Tenant> {
    const row = await control
      .updateTable('tenants')
      .set({ status, updated_at: sql`now()` })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toTenant(row);
  }

  /** Keeps a tombstone (id, slug, dates) for the record; the name goes with the data. */
  async markDeleted(control: Kysely<ControlTables>, id: string): Promise<Tenant> {
    const row = await control
      .updateTable('tenants')
      .set({ status: 'deleted', name: null, deleted_at: sql`now()`, updated_at: sql`now()` })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toTenant(row);
  }

  async insertSetupToken(
    control: Kysely<ControlTables>,
    token: { tokenHash: Buffer; tenantId: string; email: string; expiresAt: Date },
  ): Promise<void> {
    await control
      .insertInto('setup_tokens')
      .values({
        token_hash: token.tokenHash,
        tenant_id: token.tenantId,
        purpose: 'owner_setup',
        email: token.email,
        expires_at: token.expiresAt,
      })
      .execute();
  }

  /** Setup tokens and the session index: nothing in the control plane can sign in to a deleted tenant. */
  async deleteCredentials(control: Kysely<ControlTables>, tenantId: string): Promise<void> {
    await control.deleteFrom('setup_tokens').where('tenant_id', '=', tenantId).execute();
    await control.deleteFrom('credentials').where('tenant_id', '=', tenantId).execute();
  }

  /** Live tenants whose schema is not at `target` or whose last migration failed, oldest first. */
  async listNeedingMigration(target: string | null, limit: number): Promise<Tenant[]> {
    const rows = await this.#control
      .selectFrom('tenants')
      .selectAll()
      .where('deleted_at', 'is', null)
      .where((eb) =>
        eb.or([eb('schema_version', 'is distinct from', target), eb('migration_status', '=', 'failed')]),
      )
      .orderBy('created_at')
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map(toTenant);
  }

  async countNeedingMigration(target: string | null): Promise<number> {
    const row = await this.#control
      .selectFrom('tenants')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .where('deleted_at', 'is', null)
      .where((eb) =>
        eb.or([eb('schema_version', 'is distinct from', target), eb('migration_status', '=', 'failed')]),
      )
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  async recordMigrated(control: Kysely<ControlTables>, id: string, version: string | null): Promise<void> {
    await control
      .updateTable('tenants')
      .set({
        schema_version: version,
        migration_status: 'ok',
        migration_error: null,
        migrated_at: sql`now()`,
      })
      .where('id', '=', id)
      .execute();
  }

  async recordMigrationFailed(id: string, message: string): Promise<void> {
    await this.#control
      .updateTable('tenants')
      .set({ migration_status: 'failed', migration_error: message.slice(0, 2000), migrated_at: sql`now()` })
      .where('id', '=', id)
      .execute();
  }
}

function toTenant(row: Selectable<TenantsTable>): Tenant {
  return {
    id: row.id,
    slug: row.slug ?? '',
    name: row.name,
    status: row.status,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    deletedAt: row.deleted_at === null ? null : new Date(row.deleted_at),
    schemaVersion: row.schema_version,
    migrationStatus: row.migration_status,
    migrationError: row.migration_error,
    migratedAt: row.migrated_at === null ? null : new Date(row.migrated_at),
  };
}
