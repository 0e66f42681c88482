import { sql } from 'kysely';
import type { AnyKysely, Database } from './database.ts';
import { attachJournalTriggers, journalMigration } from './journal.ts';
import { type Migration, migrateSchemaDown, migrateSchemaUp } from './migrator.ts';
import { keptSchemaName, tenantRoleName, tenantSchemaName } from './tenant-schema.ts';

type RoleSettings = Pick<Database, 'rolesEnabled' | 'isSuperuser'>;

/**
 * Creates a tenant's schema, its role and its tables, inside the caller's transaction (tenant
 * creation is all-or-nothing: Postgres DDL, CREATE ROLE included, is transactional). Returns the
 * schema version reached.
 */
export async function createTenantSchema(
  trx: AnyKysely,
  roles: RoleSettings,
  tenantId: string,
  migrations: readonly Migration[],
  options: {
    /**
     * Disaster recovery onto a fresh database of a Postgres cluster that still has the tenant's role
     * (roles are cluster-wide): use it instead of failing. The role is named after the tenant id, so
     * it can only be this tenant's.
     */
    adoptRole?: boolean;
  } = {},
): Promise<string | null> {
  const schema = tenantSchemaName(tenantId);
  // No IF NOT EXISTS: a fresh tenant must get a fresh schema, never adopt a leftover one.
  await sql`create schema ${sql.id(schema)}`.execute(trx);
  if (roles.rolesEnabled) {
    const role = tenantRoleName(tenantId);
    const { rows } = options.adoptRole
      ? await sql<{ found: boolean }>`
          select exists (select 1 from pg_catalog.pg_roles where rolname = ${role}) as found`.execute(trx)
      : { rows: [{ found: false }] };
    // NOLOGIN: nobody connects as a tenant; the app switches to it with SET LOCAL ROLE.
    if (!rows[0]?.found) await sql`create role ${sql.id(role)} nologin`.execute(trx);
    // A non-superuser app user must be a member of the role to SET ROLE to it.
    if (!roles.isSuperuser) await sql`grant ${sql.id(role)} to current_user`.execute(trx);
  }
  const applied = await migrateSchemaUp(trx, schema, migrations);
  await attachJournalTriggers(trx, schema);
  await grantTenantPrivileges(trx, roles, tenantId);
  return applied.at(-1) ?? null;
}

/**
 * Applies pending migrations to one tenant and re-grants its role on whatever they created. Each
 * migration is preceded in the change journal by its marker (db/journal.ts), so a point-in-time
 * restore replays it where it happened.
 */
export async function migrateTenantSchema(
  trx: AnyKysely,
  roles: RoleSettings,
  tenantId: string,
  migrations: readonly Migration[],
): Promise<string[]> {
  const schema = tenantSchemaName(tenantId);
  const applied = await migrateSchemaUp(trx, schema, migrations, {
    beforeEach: (migration) => journalMigration(trx, schema, migration.name),
  });
  if (applied.length > 0) {
    // A table a migration added joins the change journal (db/journal.ts) in the same transaction.
    await attachJournalTriggers(trx, tenantSchemaName(tenantId));
    await grantTenantPrivileges(trx, roles, tenantId);
  }
  return applied;
}

export async function revertTenantSchema(
  trx: AnyKysely,
  tenantId: string,
  migrations: readonly Migration[],
  steps: number,
): Promise<string[]> {
  return migrateSchemaDown(trx, tenantSchemaName(tenantId), migrations, steps);
}

/**
 * The tenant role may read and write rows in its own schema, and nothing else: no DDL, no other
 * schema (PUBLIC has no USAGE on any tenant schema or on `control`), and it cannot rewrite its own
 * migration history.
 */
export async function grantTenantPrivileges(
  trx: AnyKysely,
  roles: RoleSettings,
  tenantId: string,
): Promise<void> {
  if (!roles.rolesEnabled) return;
  const schema = sql.id(tenantSchemaName(tenantId));
  const role = sql.id(tenantRoleName(tenantId));
  await sql`grant usage on schema ${schema} to ${role}`.execute(trx);
  await sql`grant select, insert, update, delete on all tables in schema ${schema} to ${role}`.execute(trx);
  await sql`grant usage, select on all sequences in schema ${schema} to ${role}`.execute(trx);
  await sql`revoke insert, update, delete, truncate on ${sql.id(tenantSchemaName(tenantId), '_migrations')} from ${role}`.execute(
    trx,
  );
  // The audit chain is append-only for the app: INSERT and SELECT, never UPDATE, DELETE or TRUNCATE
  // (a trigger refuses them too; see db/migrations/audit-log-ddl.ts). Checked by name, because a
  // schema migrated down below the audit migration has no such tables.
  for (const table of appendOnlyTables) {
    const qualified = `${tenantSchemaName(tenantId)}.${table}`;
    const { rows } = await sql<{
      found: string | null;
    }>`select to_regclass(${qualified})::text as found`.execute(trx);
    if (rows[0]?.found)
      await sql`revoke update, delete, truncate on ${sql.id(tenantSchemaName(tenantId), table)} from ${role}`.execute(
        trx,
      );
  }
}

/** Tables the tenant role may only insert into and read. */
export const appendOnlyTables = ['audit_log', 'audit_checkpoints'] as const;

/** Drops the schema with everything in it, then the role. Part of tenant deletion's transaction. */
export async function dropTenantSchema(trx: AnyKysely, roles: RoleSettings, tenantId: string): Promise<void> {
  const schema = tenantSchemaName(tenantId);
  await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(trx);
  // The previous data an unconfirmed in-place restore kept is the tenant's data too.
  await sql`drop schema if exists ${sql.id(keptSchemaName(tenantId))} cascade`.execute(trx);
  if (!roles.rolesEnabled) return;
  const role = tenantRoleName(tenantId);
  const { rows } = await sql<{ exists: boolean }>`
    select exists (select 1 from pg_catalog.pg_roles where rolname = ${role}) as exists`.execute(trx);
  if (!rows[0]?.exists) return;
  // DROP OWNED removes any grant left to the role in this database; then the role can go.
  await sql`drop owned by ${sql.id(role)}`.execute(trx);
  await sql`drop role ${sql.id(role)}`.execute(trx);
}

/**
 * Renames a schema of tenant data (an in-place restore's swap) and rewrites the functions in it
 * whose bodies name the old schema (the journal capture and usage counters are created with their
 * schema written in, so they never depend on search_path). `CREATE OR REPLACE` keeps each function's
 * identity, so its triggers stay attached. Both names are `t_`/`k_` + 32 hex digits, checked here:
 * the replacement cannot touch anything else.
 */
export async function renameTenantDataSchema(trx: AnyKysely, from: string, to: string): Promise<void> {
  for (const name of [from, to])
    if (!/^[tk]_[0-9a-f]{32}$/.test(name))
      throw new Error(`not a tenant data schema: ${JSON.stringify(name)}`);
  await sql`alter schema ${sql.id(from)} rename to ${sql.id(to)}`.execute(trx);
  const { rows } = await sql<{ definition: string }>`
    select pg_catalog.pg_get_functiondef(p.oid) as definition
    from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = ${to} and p.prokind = 'f'`.execute(trx);
  for (const { definition } of rows) {
    if (!definition.includes(from)) continue;
    await sql.raw(definition.replaceAll(from, to)).execute(trx);
  }
}

/** Takes the tenant role's access to a schema of its old data (an in-place restore's kept schema). */
export async function revokeTenantAccess(
  trx: AnyKysely,
  roles: RoleSettings,
  tenantId: string,
  schema: string,
): Promise<void> {
  if (!roles.rolesEnabled) return;
  await sql`revoke all on schema ${sql.id(schema)} from ${sql.id(tenantRoleName(tenantId))}`.execute(trx);
}
