import { sql } from 'kysely';
import { commonErrors, defineError } from '../platform/errors.ts';
import type { AnyKysely, Database } from './database.ts';
import { TenantSwitchError } from './tenant-read-pool.ts';
import { assertTenantSchemaName, tenantSchemaName } from './tenant-schema.ts';

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
  options?: WithTenantOptions,
) => Promise<T>;

export interface WithTenantOptions {
  readOnly?: boolean;
  /**
   * `repeatable read`: every statement of `fn` sees one snapshot of the tenant (backup snapshots).
   * Such work never goes to the read pool, which runs each statement on its own.
   */
  isolation?: 'repeatable read';
}

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
  if (database.kind === 'postgres') return createServerWithTenant(database, timeout);
  return async (tenantId, fn, options = {}) => {
    if (!tenantId) throw commonErrors.tenantContextMissing();
    const schema = tenantSchemaName(tenantId);
    const isolated = options.isolation
      ? database.db.transaction().setIsolationLevel(options.isolation)
      : database.db.transaction();
    const transaction = options.readOnly ? isolated.setAccessMode('read only') : isolated;
    return transaction.execute(async (trx) => {
      // One statement sets all three for this transaction only. set_config('role', …, true) is
      // SET LOCAL ROLE (same membership checks), and fails if the role went with its tenant.
      try {
        await (database.rolesEnabled
          ? sql`select set_config('search_path', ${schema}, true), set_config('statement_timeout', ${timeout}, true), set_config('role', ${schema}, true)`
          : sql`select set_config('search_path', ${schema}, true), set_config('statement_timeout', ${timeout}, true)`
        ).execute(trx);
      } catch (error) {
        throw asTenantGone(error);
      }
      return fn({ tenantId, schema, db: schemaBound(trx, schema), trx });
    });
  };
}

/**
 * Read-only work on a Postgres server goes to the tenant read pool (one round trip per statement,
 * see tenant-read-pool.ts). Everything else gets the same fences as on PGlite, one round trip cheaper: `begin` and the three settings go
 * as one simple-protocol message (several statements, no parameters), then the work, then `commit`.
 * Nothing in that message comes from a request: the schema name is derived from the tenant id and
 * checked against `t_<32 hex>` again here, and the timeout is a configured integer.
 */
function createServerWithTenant(database: Database, timeout: string): WithTenant {
  if (!/^[0-9]+ms$/.test(timeout)) throw new Error('statement timeout must be whole milliseconds');
  return async (tenantId, fn, options = {}) => {
    if (!tenantId) throw commonErrors.tenantContextMissing();
    const schema = tenantSchemaName(tenantId);
    assertTenantSchemaName(schema);
    const settings = [
      `set_config('search_path', '${schema}', true)`,
      `set_config('statement_timeout', '${timeout}', true)`,
      ...(database.rolesEnabled ? [`set_config('role', '${schema}', true)`] : []),
    ];
    const reads = database.tenantReads;
    if (options.readOnly && reads && !options.isolation) {
      return reads.run(schema, async () => {
        try {
          return await fn({ tenantId, schema, db: schemaBound(reads.db, schema), trx: reads.db });
        } catch (error) {
          if (error instanceof TenantSwitchError) throw asTenantGone(error);
          throw error;
        }
      });
    }
    const mode = [
      ...(options.isolation === 'repeatable read' ? [' isolation level repeatable read'] : []),
      ...(options.readOnly ? [' read only'] : []),
    ].join(',');
    const begin = sql.raw(`begin${mode}; select ${settings.join(', ')}`);
    return database.db.connection().execute(async (connection) => {
      try {
        await begin.execute(connection);
      } catch (error) {
        await sql`rollback`.execute(connection);
        throw asTenantGone(error);
      }
      let result: Awaited<ReturnType<typeof fn>>;
      try {
        result = await fn({ tenantId, schema, db: schemaBound(connection, schema), trx: connection });
      } catch (error) {
        await sql`rollback`.execute(connection);
        throw error;
      }
      await sql`commit`.execute(connection);
      return result;
    });
  };
}

const boundSchemas = new WeakMap<AnyKysely, string>();

/** `db` with every table qualified with `schema`, remembered as such (see `boundSchemaOf`). */
function schemaBound(db: AnyKysely, schema: string): AnyKysely {
  const bound = db.withSchema(schema);
  boundSchemas.set(bound, schema);
  return bound;
}

/** The tenant schema a `withTenant` handle qualifies its tables with; undefined for any other handle. */
export function boundSchemaOf(db: AnyKysely): string | undefined {
  return boundSchemas.get(db);
}

/** 22023 invalid_parameter_value: the role does not exist (42704 on some versions). */
function asTenantGone(error: unknown): unknown {
  const code = (error as { code?: string }).code;
  return code === '22023' || code === '42704' ? tenantScopeErrors.tenantGone() : error;
}
