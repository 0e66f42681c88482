import { AsyncLocalStorage } from 'node:async_hooks';
import { Kysely, PostgresDialect, type PostgresPool } from 'kysely';
import pg from 'pg';
import type { AnyKysely } from './database.ts';
import { queryPrepared } from './prepared-statements.ts';
import { assertTenantSchemaName } from './tenant-schema.ts';

/**
 * Tenant reads on a Postgres server, one round trip each. A separate pool whose connections are
 * read-only for their whole life (`default_transaction_read_only=on`, so no statement on them can
 * write) and keep the last tenant's `search_path` and role at session level between uses. Before
 * any statement, the connection is switched to the tenant of the calling `run` (one extra round trip,
 * only when the connection last served another tenant). A statement issued outside `run` is refused
 * before it reaches the database.
 *
 * The same three fences as `withTenant`'s transactions: the schema-qualified Kysely, the search path,
 * and the tenant's own role. Under READ COMMITTED every statement takes its own snapshot anyway, so
 * a read-only scope loses nothing by not being one transaction.
 */
export interface TenantReadPool {
  readonly db: AnyKysely;
  run<T>(schema: string, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Switching a connection to a tenant failed (its role is gone with it, or the server refused). */
export class TenantSwitchError extends Error {
  readonly code: string | undefined;
  constructor(cause: unknown) {
    super('could not switch the connection to the tenant', { cause });
    this.code = (cause as { code?: string }).code;
  }
}

/** What a statement answers when its connection's tenant settings outlived the tenant's schema or role. */
const staleCodes = new Set(['42P01', '3F000', '42704', '42501', '22023']);

export function createTenantReadPool(options: {
  connectionString: string;
  max: number;
  statementTimeoutMs: number;
  rolesEnabled: boolean;
}): TenantReadPool {
  if (!Number.isInteger(options.statementTimeoutMs)) throw new Error('statement timeout must be an integer');
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    options: `-c search_path=pg_catalog -c default_transaction_read_only=on -c statement_timeout=${options.statementTimeoutMs}`,
  });
  pool.on('error', () => {
    // Deliberately ignored: the pool drops the broken client and the next query reconnects.
  });
  const current = new AsyncLocalStorage<string>();
  /** The tenant schema each connection holds at session level; absent means none (or unknown). */
  const holds = new WeakMap<pg.PoolClient, string>();
  const switchTo = options.rolesEnabled
    ? `select set_config('search_path', $1, false), set_config('role', $1, false)`
    : `select set_config('search_path', $1, false)`;

  const tenantAware: PostgresPool = {
    async connect() {
      const client = await pool.connect();
      return {
        async query(text: string, values: readonly unknown[]) {
          const schema = current.getStore();
          if (schema === undefined) throw new Error('a tenant read ran outside its tenant');
          const switchConnection = async () => {
            holds.delete(client);
            try {
              await queryPrepared(client, switchTo, [schema]);
            } catch (error) {
              throw new TenantSwitchError(error);
            }
            holds.set(client, schema);
          };
          if (holds.get(client) === schema) {
            try {
              return await queryPrepared(client, text, values);
            } catch (error) {
              // The tenant may have gone (or been re-created) since this connection switched to it:
              // switch again, which fails cleanly for a dropped role, and retry the read once.
              if (!staleCodes.has((error as { code?: string }).code ?? '')) throw error;
              await switchConnection();
              return queryPrepared(client, text, values);
            }
          }
          await switchConnection();
          return queryPrepared(client, text, values);
        },
        release: () => client.release(),
      } as unknown as ReturnType<PostgresPool['connect']> extends Promise<infer C> ? C : never;
    },
    end: () => pool.end(),
  };
  const db: AnyKysely = new Kysely({ dialect: new PostgresDialect({ pool: tenantAware }) });
  return {
    db,
    run: (schema, fn) => {
      assertTenantSchemaName(schema);
      return current.run(schema, fn);
    },
    close: () => db.destroy(),
  };
}
