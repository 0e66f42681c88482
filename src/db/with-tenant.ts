import { sql } from 'kysely';
import { commonErrors, defineError } from '../platform/errors.ts';
import type { AnyKysely, Database } from './database.ts';
import { tenantSchemaName } from './tenant-schema.ts';

/** What tenant code gets: a Kysely bound to the tenant's schema, inside one transaction. */
export interface TenantScope {
  readonly tenantId: string;
  readonly schema: string;
  /** Every table reference is qualified with the tenant's schema (`withSchema`). */
  readonly db: AnyKysely;
  /** The bare transaction, for raw SQL; name the schema with `sql.id(scope.schema)`. */
  readonly trx: AnyKysely;
}

export type WithTenant = <T>(
  tenantId: string | undefined,
  fn: (scope: TenantScope) => Promise<T>,
  options?: { readOnly?: boolean },
) => Promise<T>;

export const tenantScopeErrors = {
  tenantGone: defineError('tenant_not_found', 'not_found', 'The tenant does not exist or was deleted.'),
};

/**
 * `withTenant(tenantId, fn)`: the only way to reach tenant data. Three independent fences:
 * 1. typed scoping: `fn` gets a Kysely whose tables are qualified with the tenant's schema;
 * 2. `search_path` is set to the tenant's schema for this transaction only (`set_config(…, true)`);
 * 3. where the database allows roles, `SET LOCAL ROLE` switches to the tenant's own role, which has
 *    USAGE on its own schema and nothing else, so even raw SQL naming another tenant's schema is
 *    refused by Postgres itself.
 * A statement timeout bounds every query. With no tenant id it fails closed before touching the
 * database.
 */
export function createWithTenant(database: Database): WithTenant {
  const timeout = `${database.statementTimeoutMs}ms`;
  return async (tenantId, fn, options = {}) => {
    if (!tenantId) throw commonErrors.tenantContextMissing();
    const schema = tenantSchemaName(tenantId);
    const builder = database.db.transaction();
    const transaction = options.readOnly ? builder.setAccessMode('read only') : builder;
    return transaction.execute(async (trx) => {
      // One round trip sets all three for this transaction only. set_config('role', …, true) is
      // SET LOCAL ROLE (same membership checks), and fails if the role went with its tenant.
      try {
        await (database.rolesEnabled
          ? sql`select set_config('search_path', ${schema}, true), set_config('statement_timeout', ${timeout}, true), set_config('role', ${schema}, true)`
          : sql`select set_config('search_path', ${schema}, true), set_config('statement_timeout', ${timeout}, true)`
        ).execute(trx);
      } catch (error) {
        // 22023 invalid_parameter_value: the role does not exist (42704 on some versions).
        const code = (error as { code?: string }).code;
        if (code === '22023' || code === '42704') throw tenantScopeErrors.tenantGone();
        throw error;
      }
      return fn({ tenantId, schema, db: trx.withSchema(schema), trx });
    });
  };
}
