import { randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';

/**
 * The bench's own database on the Postgres server, created fresh for each run and dropped at the
 * end together with the tenant roles it created (roles are cluster-wide, like in
 * test/support/databases.ts).
 */
export interface BenchDatabase {
  name: string;
  url: string;
  /** Drops the tenant roles of this database, then the database. Safe to call twice. */
  drop(): Promise<void>;
}

export function adminKysely(adminUrl: string): Kysely<Record<string, never>> {
  return new Kysely<Record<string, never>>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: adminUrl, max: 1 }) }),
  });
}

export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `sr_bench_${randomBytes(6).toString('hex')}`;
  const admin = adminKysely(adminUrl);
  await sql`create database ${sql.id(name)}`.execute(admin);
  await admin.destroy();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    name,
    url: url.toString(),
    drop: async () => {
      if (dropped) return;
      dropped = true;
      const inDb = adminKysely(url.toString());
      // Only the tenant roles whose schema lives in this database: other runs' roles are not ours.
      const roles = await sql<{ rolname: string }>`
        select r.rolname from pg_catalog.pg_roles r
        where r.rolname ~ '^t_[0-9a-f]{32}$'
          and exists (select 1 from pg_catalog.pg_namespace n where n.nspname = r.rolname)`
        .execute(inDb)
        .catch(() => ({ rows: [] as { rolname: string }[] }));
      await inDb.destroy();
      const server = adminKysely(adminUrl);
      try {
        await sql`drop database if exists ${sql.id(name)} with (force)`.execute(server);
        // The database (and so every grant to these roles in it) is gone: the roles can go too.
        for (const { rolname } of roles.rows)
          await sql`drop role if exists ${sql.id(rolname)}`.execute(server);
      } finally {
        await server.destroy();
      }
    },
  };
}

/** Client backends connected to `database`: whose CPU a run costs the server (read from /proc). */
export async function clientBackendPids(
  admin: Kysely<Record<string, never>>,
  database: string,
): Promise<number[]> {
  const { rows } = await sql<{ pid: number }>`
    select pid from pg_catalog.pg_stat_activity
    where datname = ${database} and backend_type = 'client backend'`.execute(admin);
  return rows.map((r) => r.pid);
}

/** Server facts for the report: version and the durability settings that dominate DDL commits. */
export async function postgresFacts(adminUrl: string): Promise<Record<string, string>> {
  const admin = adminKysely(adminUrl);
  try {
    const facts: Record<string, string> = {};
    const { rows } = await sql<{ v: string }>`select version() as v`.execute(admin);
    facts.version = rows[0]?.v.split(' on ')[0] ?? 'unknown';
    for (const setting of ['synchronous_commit', 'fsync', 'shared_buffers', 'max_connections']) {
      const r = await sql<{ setting: string }>`select current_setting(${setting}) as setting`.execute(admin);
      facts[setting] = r.rows[0]?.setting ?? '?';
    }
    return facts;
  } finally {
    await admin.destroy();
  }
}
