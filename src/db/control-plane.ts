import { sql } from 'kysely';
import type { AnyKysely } from './database.ts';
import { type Migration, migrateSchemaDown, migrateSchemaUp } from './migrator.ts';
import { controlSchema } from './tenant-schema.ts';

/** An arbitrary constant: the advisory lock that serialises control-plane migrators. */
const controlMigrationLockId = 7_301_114_001;

/** Brings the control plane to the latest version; safe to call on every start (idempotent). */
export async function migrateControlPlane(
  db: AnyKysely,
  migrations: readonly Migration[],
): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${controlMigrationLockId})`.execute(trx);
    await sql`create schema if not exists ${sql.id(controlSchema)}`.execute(trx);
    // Tenant roles must never see the control plane (PUBLIC has no USAGE on a new schema; say so anyway).
    await sql`revoke all on schema ${sql.id(controlSchema)} from public`.execute(trx);
    return migrateSchemaUp(trx, controlSchema, migrations);
  });
}

export async function revertControlPlane(
  db: AnyKysely,
  migrations: readonly Migration[],
  steps: number,
): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${controlMigrationLockId})`.execute(trx);
    return migrateSchemaDown(trx, controlSchema, migrations, steps);
  });
}
