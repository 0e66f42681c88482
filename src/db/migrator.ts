import { sql } from 'kysely';
import { defineError } from '../platform/errors.ts';
import type { AnyKysely } from './database.ts';

/**
 * Versioned migrations for one schema (the control plane, or one tenant), tracked in a `_migrations`
 * table inside that schema. Migrations run in the caller's transaction, so a schema moves from one
 * version to the next whole or not at all.
 *
 * Expand/contract: a migration only ever adds (tables, nullable columns, indexes) while any running
 * app version may not know it; dropping or renaming happens in a later release, after every node runs
 * code that no longer uses the old shape. Old and new app versions can therefore share a database
 * during a rolling upgrade.
 */
export interface Migration {
  /** `<yyyymmddhhmmss>-<verb>-<noun>`; the order of application is the order of names. */
  readonly name: string;
  up(context: MigrationContext): Promise<void>;
  down(context: MigrationContext): Promise<void>;
}

export interface MigrationContext {
  /** Kysely bound to the schema being migrated (`withSchema`). */
  readonly db: AnyKysely;
  /** The bare transaction, for raw SQL; name the schema with `sql.id(context.schema)`. */
  readonly trx: AnyKysely;
  readonly schema: string;
}

export const migrationErrors = {
  unknownApplied: defineError(
    'migration_unknown',
    'conflict',
    'The schema has migrations this version of Strongroom does not know; it was migrated by a newer version.',
    (schema: string, names: string[]) => ({ details: { schema, names } }),
  ),
  failed: defineError(
    'migration_failed',
    'internal',
    'A migration failed; the schema was left at its previous version.',
    (schema: string, name: string, cause: unknown) => ({
      message: `migration ${name} failed on ${schema}: ${(cause as Error)?.message ?? String(cause)}`,
      details: { schema, migration: name },
      cause,
    }),
  ),
};

/** Creates the tracking table if needed and takes its lock, so two migrators of one schema queue up. */
async function lockTracking(trx: AnyKysely, schema: string): Promise<string[]> {
  await sql`create table if not exists ${sql.id(schema, '_migrations')} (
    name text primary key,
    applied_at timestamptz not null default now()
  )`.execute(trx);
  await sql`lock table ${sql.id(schema, '_migrations')} in exclusive mode`.execute(trx);
  const { rows } = await sql<{
    name: string;
  }>`select name from ${sql.id(schema, '_migrations')} order by name`.execute(trx);
  return rows.map((r) => r.name);
}

export function latestMigrationName(migrations: readonly Migration[]): string | null {
  return migrations.at(-1)?.name ?? null;
}

/** Applies every pending migration in order; returns the names applied (empty when up to date). */
export async function migrateSchemaUp(
  trx: AnyKysely,
  schema: string,
  migrations: readonly Migration[],
  options: {
    /** Runs in the transaction just before each pending migration's `up` (the journal's marker). */
    beforeEach?: (migration: Migration) => Promise<void>;
  } = {},
): Promise<string[]> {
  const applied = new Set(await lockTracking(trx, schema));
  const known = new Set(migrations.map((m) => m.name));
  const unknown = [...applied].filter((name) => !known.has(name));
  if (unknown.length > 0) throw migrationErrors.unknownApplied(schema, unknown);
  const context: MigrationContext = { db: trx.withSchema(schema), trx, schema };
  const done: string[] = [];
  for (const migration of migrations) {
    if (applied.has(migration.name)) continue;
    try {
      await options.beforeEach?.(migration);
      await migration.up(context);
    } catch (cause) {
      throw migrationErrors.failed(schema, migration.name, cause);
    }
    await sql`insert into ${sql.id(schema, '_migrations')} (name) values (${migration.name})`.execute(trx);
    done.push(migration.name);
  }
  return done;
}

/** Reverts the newest `steps` applied migrations, newest first; returns the names reverted. */
export async function migrateSchemaDown(
  trx: AnyKysely,
  schema: string,
  migrations: readonly Migration[],
  steps: number,
): Promise<string[]> {
  const applied = await lockTracking(trx, schema);
  const byName = new Map(migrations.map((m) => [m.name, m]));
  const context: MigrationContext = { db: trx.withSchema(schema), trx, schema };
  const reverted: string[] = [];
  for (const name of applied.reverse().slice(0, steps)) {
    const migration = byName.get(name);
    if (!migration) throw migrationErrors.unknownApplied(schema, [name]);
    try {
      await migration.down(context);
    } catch (cause) {
      throw migrationErrors.failed(schema, name, cause);
    }
    await sql`delete from ${sql.id(schema, '_migrations')} where name = ${name}`.execute(trx);
    reverted.push(name);
  }
  return reverted;
}

/** The names applied to a schema, oldest first (empty if it has no tracking table). */
export async function listAppliedMigrations(db: AnyKysely, schema: string): Promise<string[]> {
  const { rows } = await sql<{ exists: boolean }>`
    select to_regclass(${`${schema}._migrations`}) is not null as exists`.execute(db);
  if (!rows[0]?.exists) return [];
  const result = await sql<{
    name: string;
  }>`select name from ${sql.id(schema, '_migrations')} order by name`.execute(db);
  return result.rows.map((r) => r.name);
}
