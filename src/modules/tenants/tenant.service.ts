import type { Kysely } from 'kysely';
import { generateToken, hashToken } from '../../crypto/tokens.ts';
import type { ControlTables } from '../../db/control-tables.ts';
import type { AnyKysely, Database } from '../../db/database.ts';
import { latestMigrationName, type Migration } from '../../db/migrator.ts';
import { createTenantSchema, dropTenantSchema } from '../../db/tenant-schemas.ts';
import type { WithTenant } from '../../db/with-tenant.ts';
import type { Clock } from '../../platform/clock.ts';
import { newId } from '../../platform/ids.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import { tenantErrors } from './tenant.errors.ts';
import type { Tenant, TenantRepository } from './tenant.repository.ts';
import { assertValidSlug, assertValidTenantName, normalizeEmail } from './tenant-validation.ts';

export interface CreateTenantInput {
  slug: string;
  name: string;
  ownerEmail: string;
}

export interface TenantSchemaStatus {
  tenantId: string;
  /** Migrations applied inside the tenant's schema, read from its own tracking table. */
  applied: string[];
  /** The newest migration this version of Strongroom knows. */
  latest: string | null;
  upToDate: boolean;
}

export interface CreatedTenant {
  tenant: Tenant;
  /** Shown once: the owner uses it to set up their account. Only its SHA-256 is stored. */
  ownerSetupToken: string;
  ownerSetupExpiresAt: Date;
}

/**
 * Whatever remembers who may use a tenant (the identity module's principal cache). Cleared before a
 * tenant stops serving, so a suspension or deletion holds on every node from the next request.
 */
export interface TenantAccessCache {
  forgetTenant(tenantId: string): Promise<void>;
}

/** How long the owner's one-time setup token stays valid. */
const ownerSetupTtlMs = 7 * 24 * 60 * 60 * 1000;

/**
 * Tenant lifecycle. Creation and deletion are each one transaction over the control row, the
 * tenant's schema and role, its data key and its setup token: they happen whole or not at all.
 */
export class TenantService {
  readonly #database: Pick<Database, 'db' | 'rolesEnabled' | 'isSuperuser'>;
  readonly #tenants: TenantRepository;
  readonly #keys: TenantKeyService;
  readonly #migrations: readonly Migration[];
  readonly #clock: Clock;
  readonly #withTenant: WithTenant;
  readonly #accessCache: TenantAccessCache | undefined;

  constructor(deps: {
    database: Pick<Database, 'db' | 'rolesEnabled' | 'isSuperuser'>;
    tenants: TenantRepository;
    keys: TenantKeyService;
    migrations: readonly Migration[];
    clock: Clock;
    withTenant: WithTenant;
    accessCache?: TenantAccessCache;
  }) {
    this.#withTenant = deps.withTenant;
    this.#accessCache = deps.accessCache;
    this.#database = deps.database;
    this.#tenants = deps.tenants;
    this.#keys = deps.keys;
    this.#migrations = deps.migrations;
    this.#clock = deps.clock;
  }

  async create(input: CreateTenantInput): Promise<CreatedTenant> {
    assertValidSlug(input.slug);
    assertValidTenantName(input.name);
    const ownerEmail = normalizeEmail(input.ownerEmail, 'ownerEmail');
    // Fail fast on a taken slug before doing DDL; the unique index still decides under a race.
    if (await this.#tenants.findLiveBySlug(input.slug)) throw tenantErrors.slugTaken(input.slug);

    const id = newId();
    const ownerSetupToken = generateToken('srs');
    const ownerSetupExpiresAt = new Date(this.#clock.now().getTime() + ownerSetupTtlMs);
    const tenant = await this.#transaction(async (control, trx) => {
      const created = await this.#tenants.insert(control, {
        id,
        slug: input.slug,
        name: input.name.trim(),
        schemaVersion: latestMigrationName(this.#migrations),
      });
      await createTenantSchema(trx, this.#database, id, this.#migrations);
      await this.#keys.createDataKey(control, id);
      await this.#tenants.insertSetupToken(control, {
        tokenHash: hashToken(ownerSetupToken),
        tenantId: id,
        email: ownerEmail,
        expiresAt: ownerSetupExpiresAt,
      });
      return created;
    });
    return { tenant, ownerSetupToken, ownerSetupExpiresAt };
  }

  async list(
    options: { includeDeleted?: boolean; limit?: number; afterId?: string } = {},
  ): Promise<Tenant[]> {
    return this.#tenants.list({
      includeDeleted: options.includeDeleted ?? false,
      limit: Math.min(Math.max(options.limit ?? 100, 1), 1000),
      afterId: options.afterId,
    });
  }

  /** A live or deleted tenant by id, or a live one by slug. */
  async get(idOrSlug: string): Promise<Tenant> {
    const tenant = /^[0-9a-f-]{36}$/.test(idOrSlug)
      ? await this.#tenants.findById(idOrSlug)
      : await this.#tenants.findLiveBySlug(idOrSlug);
    if (!tenant) throw tenantErrors.notFound();
    return tenant;
  }

  /** Reads the tenant's own migration history through `withTenant` (its schema, its role). */
  async getSchemaStatus(idOrSlug: string): Promise<TenantSchemaStatus> {
    const tenant = await this.get(idOrSlug);
    if (tenant.status === 'deleted') throw tenantErrors.notFound();
    const applied = await this.#withTenant(
      tenant.id,
      async (scope) =>
        (await scope.db.selectFrom('_migrations').select('name').orderBy('name').execute()).map(
          (r) => r.name as string,
        ),
      { readOnly: true },
    );
    const latest = latestMigrationName(this.#migrations);
    return { tenantId: tenant.id, applied, latest, upToDate: applied.at(-1) === latest };
  }

  async suspend(idOrSlug: string): Promise<Tenant> {
    return this.#changeStatus(idOrSlug, 'suspend', 'active', 'suspended');
  }

  async resume(idOrSlug: string): Promise<Tenant> {
    return this.#changeStatus(idOrSlug, 'resume', 'suspended', 'active');
  }

  /**
   * Drops the tenant's schema and role and destroys its data key, so every copy of its data
   * (objects, and later backups and exports) becomes unreadable. Refuses unless `confirmSlug` is the
   * tenant's slug.
   */
  async delete(idOrSlug: string, confirmSlug: string | undefined): Promise<Tenant> {
    const found = await this.get(idOrSlug);
    if (found.status === 'deleted') throw tenantErrors.notFound();
    if (confirmSlug !== found.slug) throw tenantErrors.confirmationRequired(found.slug);
    await this.#accessCache?.forgetTenant(found.id);
    const deleted = await this.#transaction(async (control, trx) => {
      const tenant = await this.#tenants.findByIdForUpdate(control, found.id);
      if (!tenant || tenant.status === 'deleted') throw tenantErrors.notFound();
      await dropTenantSchema(trx, this.#database, tenant.id);
      await this.#keys.destroyDataKeys(control, tenant.id);
      await this.#tenants.deleteCredentials(control, tenant.id);
      return this.#tenants.markDeleted(control, tenant.id);
    });
    this.#keys.forget(deleted.id);
    return deleted;
  }

  async #changeStatus(
    idOrSlug: string,
    action: string,
    from: 'active' | 'suspended',
    to: 'active' | 'suspended',
  ): Promise<Tenant> {
    const found = await this.get(idOrSlug);
    // Only principals of active tenants are cached; clear them before the tenant stops serving.
    if (to === 'suspended') await this.#accessCache?.forgetTenant(found.id);
    const changed = await this.#transaction(async (control) => {
      const tenant = await this.#tenants.findByIdForUpdate(control, found.id);
      if (!tenant || tenant.status === 'deleted') throw tenantErrors.notFound();
      if (tenant.status !== from) throw tenantErrors.invalidTransition(tenant.status, action);
      return this.#tenants.setStatus(control, tenant.id, to);
    });
    if (to === 'suspended') await this.#accessCache?.forgetTenant(found.id).catch(() => undefined);
    return changed;
  }

  #transaction<T>(fn: (control: Kysely<ControlTables>, trx: AnyKysely) => Promise<T>): Promise<T> {
    return this.#database.db
      .transaction()
      .execute((trx) => fn(trx.withSchema('control') as unknown as Kysely<ControlTables>, trx));
  }
}
