import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/config.ts';
import { defineError } from '../platform/errors.ts';
import type { ControlTables } from './control-tables.ts';
import { PGliteDialect } from './pglite-dialect.ts';
import { preparingPool } from './prepared-statements.ts';
import { createTenantReadPool, type TenantReadPool } from './tenant-read-pool.ts';
import { controlSchema } from './tenant-schema.ts';

/**
 * A Kysely handle that is not tied to one schema's table types: the root connection, a transaction
 * used for DDL, or a handle bound to a tenant schema (tenant table types arrive with the modules
 * that own those tables).
 */
// biome-ignore lint/suspicious/noExplicitAny: Kysely's own idiom for a schema-agnostic handle.
export type AnyKysely = Kysely<any>;

/**
 * What opening a database takes: the configured settings, or (tests, tools) an in-memory PGlite with
 * no data folder.
 */
export type DatabaseSettings =
  | Config['database']
  | (Omit<Extract<Config['database'], { kind: 'pglite' }>, 'dataDir'> & { dataDir: undefined });

/**
 * An open database: the root Kysely handle (search_path holds nothing but pg_catalog, so an
 * unqualified table name finds no tenant table), the control-plane handle bound to `control`, and
 * what the server allows.
 */
export interface Database {
  readonly kind: 'pglite' | 'postgres';
  readonly db: AnyKysely;
  readonly control: Kysely<ControlTables>;
  /** Whether each tenant gets its own Postgres role and `withTenant` switches to it. */
  readonly rolesEnabled: boolean;
  /** Whether the connected user is a superuser (then it needs no grant to SET ROLE). */
  readonly isSuperuser: boolean;
  readonly statementTimeoutMs: number;
  /** Postgres server only: read-only tenant work, one round trip per statement (tenant-read-pool.ts). */
  readonly tenantReads?: TenantReadPool;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const databaseErrors = {
  unreachable: defineError(
    'database_unreachable',
    'unavailable',
    'The database cannot be reached.',
    (where: string, cause?: unknown) => ({ message: `the database at ${where} cannot be reached`, cause }),
  ),
  embeddedInUse: defineError(
    'embedded_database_in_use',
    'conflict',
    'Another Strongroom process holds the embedded database.',
    (dataDir: string, pid: number) => ({
      message: `the embedded database in ${dataDir} is in use by process ${pid}; stop it first, or use a Postgres server (DATABASE_URL) to run several processes`,
      details: { pid },
    }),
  ),
  rolesUnavailable: defineError(
    'database_roles_unavailable',
    'invalid',
    'STRONGROOM_DB_ROLES=on but the database user may not create roles.',
  ),
};

export async function openDatabase(settings: DatabaseSettings): Promise<Database> {
  return settings.kind === 'pglite' ? openPGlite(settings) : openPostgres(settings);
}

async function openPostgres(settings: Extract<DatabaseSettings, { kind: 'postgres' }>): Promise<Database> {
  const url = settings.url.reveal();
  const pool = new pg.Pool({
    connectionString: url,
    max: settings.poolSize,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // Nothing is found by accident: unqualified names resolve only in pg_catalog.
    options: '-c search_path=pg_catalog',
  });
  // An idle client that errors (server restart) must not crash the process; the next query reconnects.
  pool.on('error', () => {
    // Deliberately ignored: the pool drops the broken client and the next query reconnects.
  });
  const db: AnyKysely = new Kysely({ dialect: new PostgresDialect({ pool: preparingPool(pool) }) });
  try {
    await sql`select 1`.execute(db);
  } catch (cause) {
    await db.destroy();
    throw databaseErrors.unreachable(describeUrl(url), cause);
  }
  let tenantReads: TenantReadPool | undefined;
  const opened = await finishOpen('postgres', db, settings, async () => {
    await tenantReads?.close();
    await db.destroy();
  });
  tenantReads = createTenantReadPool({
    connectionString: url,
    max: settings.poolSize,
    statementTimeoutMs: settings.statementTimeoutMs,
    rolesEnabled: opened.rolesEnabled,
  });
  return { ...opened, tenantReads };
}

async function openPGlite(settings: Extract<DatabaseSettings, { kind: 'pglite' }>): Promise<Database> {
  let releaseLock = () => {
    // Replaced by the lock's release once the data folder is locked (in-memory PGlite has none).
  };
  if (settings.dataDir !== undefined) {
    mkdirSync(settings.dataDir, { recursive: true, mode: 0o700 });
    releaseLock = lockDataDir(settings.dataDir);
  }
  let pglite: PGlite;
  try {
    pglite = new PGlite(settings.dataDir === undefined ? undefined : { dataDir: settings.dataDir });
    await pglite.waitReady;
    await pglite.exec('set search_path to pg_catalog');
  } catch (cause) {
    releaseLock();
    throw databaseErrors.unreachable(settings.dataDir ?? 'memory', cause);
  }
  const db: AnyKysely = new Kysely({ dialect: new PGliteDialect(pglite) });
  return finishOpen('pglite', db, settings, async () => {
    await db.destroy();
    await pglite.close();
    releaseLock();
  });
}

async function finishOpen(
  kind: 'pglite' | 'postgres',
  db: AnyKysely,
  settings: DatabaseSettings,
  close: () => Promise<void>,
): Promise<Database> {
  const { rows } = await sql<{ is_superuser: boolean; can_create_roles: boolean }>`
    select rolsuper as is_superuser, (rolsuper or rolcreaterole) as can_create_roles
    from pg_catalog.pg_roles where rolname = current_user`.execute(db);
  const isSuperuser = rows[0]?.is_superuser ?? false;
  const canCreateRoles = rows[0]?.can_create_roles ?? false;
  if (settings.roles === 'on' && !canCreateRoles) {
    await close();
    throw databaseErrors.rolesUnavailable();
  }
  const rolesEnabled = settings.roles === 'on' || (settings.roles === 'auto' && canCreateRoles);
  return {
    kind,
    db,
    control: db.withSchema(controlSchema) as unknown as Kysely<ControlTables>,
    rolesEnabled,
    isSuperuser,
    statementTimeoutMs: settings.statementTimeoutMs,
    ping: async () => {
      await sql`select 1`.execute(db);
    },
    close,
  };
}

/** host:port/database of a Postgres URL, without user or password, for error messages. */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || 5432}${parsed.pathname}`;
  } catch {
    return 'DATABASE_URL (unparseable)';
  }
}

/**
 * PGlite is one process's database: two processes opening the same folder would corrupt it. A lock
 * file with the holder's pid keeps the second one out with a clear message; a stale lock (its process
 * is gone) is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const lockPath = join(dataDir, 'strongroom.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number(readFileSync(lockPath, 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw databaseErrors.embeddedInUse(dataDir, pid);
      }
      rmSync(lockPath, { force: true });
    }
  }
  throw databaseErrors.embeddedInUse(dataDir, -1);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
