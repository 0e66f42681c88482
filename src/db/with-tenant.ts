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
  /**
   * A statement run after `fn` succeeded, just before the commit. On a Postgres server it travels
   * with `commit` in one message, saving a round trip (the audit entry of every write uses it). It
   * takes no parameters: a value it carries is quoted with `dollarQuoted`.
   */
  finalStatement?: (scope: TenantScope) => FinalStatement;
}

export interface FinalStatement {
  /** One complete statement, without parameters. */
  readonly text: string;
  /** Its result rows. What they report holds only if `withTenant` then returns (the commit succeeded). */
  readonly onRows: (rows: readonly unknown[]) => void;
}

/**
 * `value` as a dollar-quoted SQL string literal, for a statement that cannot take parameters. The
 * literal ends at the first occurrence of its tag after the opening one, so the tag is chosen to
 * occur first right at the end: not inside the value, nor across its end (a value ending in `$q`
 * must not meet a closing `$q$`). Then no content, quotes, backslashes or dollars, can end it early,
 * whatever `standard_conforming_strings` says. NUL cannot appear in a Postgres string.
 */
export function dollarQuoted(value: string): string {
  if (value.includes('\0')) throw new Error('a SQL string literal cannot hold NUL');
  let tag = '$q$';
  for (let n = 1; (value + tag).indexOf(tag) !== value.length; n++) tag = `$q${n}$`;
  return `${tag}${value}${tag}`;
}

export const tenantScopeErrors = {
  tenantGone: defineError('tenant_not_found', 'not_found', 'The tenant does not exist or was deleted.'),
  restoring: defineError(
    'tenant_restoring',
    'unavailable',
    'The tenant is paused for a moment while a restore swaps its data in; retry after the given seconds.',
    () => ({ details: { retryAfterSeconds: 2 } }),
  ),
};

/**
 * The pause of an in-place restore: every tenant transaction that may write takes a shared
 * transaction-level advisory lock on its tenant (class `pauseLockClass`, key `hashtext(schema)`),
 * without waiting; the swap takes it exclusively (`pauseTenantWrites`), which waits for the
 * transactions in flight and makes new ones fail at once with `tenant_restoring`. Reads through the
 * read pool are not paused: each statement sees the tenant wholly before or wholly after the swap.
 * The failure is an error raised in SQL (a cast that cannot succeed) because the server path sends
 * `begin` and the settings as one message, whose result rows are not returned.
 */
const pauseLockClass = 1_397_904_212;
const pauseMarker = 'tenant_restoring';

function pauseCheck(schema: string): string {
  assertTenantSchemaName(schema);
  // txid_current() keeps the cast from being folded (and failing) at plan time.
  return `(case when pg_try_advisory_xact_lock_shared(${pauseLockClass}, hashtext('${schema}')) then '' else ('${pauseMarker} ' || txid_current())::int::text end)`;
}

/**
 * Pauses a tenant's writes for the rest of the caller's transaction: waits (at most `waitMs`) for the
 * tenant's transactions in flight to end; new ones fail with `tenant_restoring` until it commits.
 */
export async function pauseTenantWrites(trx: AnyKysely, tenantId: string, waitMs: number): Promise<void> {
  const schema = tenantSchemaName(tenantId);
  const { rows } = await sql<{ previous: string }>`
    select current_setting('lock_timeout') as previous,
      set_config('lock_timeout', ${`${Math.trunc(waitMs)}ms`}, true)`.execute(trx);
  await sql`select pg_advisory_xact_lock(${sql.lit(pauseLockClass)}, hashtext(${schema}))`.execute(trx);
  await sql`select set_config('lock_timeout', ${rows[0]?.previous ?? '0'}, true)`.execute(trx);
}

function asPaused(error: unknown): unknown {
  const { code, message } = error as { code?: string; message?: string };
  return code === '22P02' && message?.includes(pauseMarker) ? tenantScopeErrors.restoring() : error;
}

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
          ? sql`select set_config('search_path', ${schema}, true), set_config('statement_timeout', ${timeout}, true), set_config('role', ${schema}, true), ${sql.raw(pauseCheck(schema))}`
          : sql`select set_config('search_path', ${schema}, true), set_config('statement_timeout', ${timeout}, true), ${sql.raw(pauseCheck(schema))}`
        ).execute(trx);
      } catch (error) {
        throw asTenantGone(asPaused(error));
      }
      const scope = { tenantId, schema, db: schemaBound(trx, schema), trx };
      const result = await fn(scope);
      if (options.finalStatement) {
        const final = options.finalStatement(scope);
        const { rows } = await sql.raw(final.text).execute(trx);
        final.onRows(rows);
      }
      return result;
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
      pauseCheck(schema),
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
        throw asTenantGone(asPaused(error));
      }
      const scope = { tenantId, schema, db: schemaBound(connection, schema), trx: connection };
      let result: Awaited<ReturnType<typeof fn>>;
      let final: FinalStatement | undefined;
      try {
        result = await fn(scope);
        final = options.finalStatement?.(scope);
      } catch (error) {
        await sql`rollback`.execute(connection);
        throw error;
      }
      if (!final) {
        await sql`commit`.execute(connection);
        return result;
      }
      // One message: if the statement fails, `commit` is skipped and the transaction is left aborted;
      // if the commit fails, it is already over (a rollback then only warns).
      let rows: readonly unknown[];
      try {
        ({ rows } = await sql.raw(`${final.text}; commit`).execute(connection));
      } catch (error) {
        await sql`rollback`.execute(connection);
        throw error;
      }
      final.onRows(rows);
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
