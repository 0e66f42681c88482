// Backup bench on a Postgres server: journal cost on record creates, snapshot speed next to
// `pg_dump -Fc` of the same schema, restore with journal replay next to `pg_restore`, and RPO under a
// steady write load. Run: node bench/backups.ts (BENCH_BACKUP_RECORDS, BENCH_BACKUP_JOURNAL,
// BENCH_POSTGRES_URL). Writes bench/RESULTS-backups.md.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { LocalKeyProvider } from '../src/adapters/keys/key-provider.local.ts';
import { FsObjectStore } from '../src/adapters/object-store/object-store.fs.ts';
import { openDatabase } from '../src/db/database.ts';
import { tenantSchemaName } from '../src/db/tenant-schema.ts';
import { composeCore, prepareControlPlane } from '../src/main/compose.ts';
import { newId } from '../src/platform/ids.ts';
import { Secret } from '../src/platform/secret.ts';
import { adminKysely, createBenchDatabase } from './postgres.ts';

const benchDir = dirname(fileURLToPath(import.meta.url));
const adminUrl = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const recordCount = Number(process.env.BENCH_BACKUP_RECORDS ?? 200_000);
const journalEntries = Number(process.env.BENCH_BACKUP_JOURNAL ?? 100_000);
const writeOps = Number(process.env.BENCH_BACKUP_WRITES ?? 2_000);

const seconds = (startNs: bigint) => Number(process.hrtime.bigint() - startNs) / 1e9;
const mb = (bytes: number) => bytes / 1024 / 1024;

const benchDb = await createBenchDatabase(adminUrl);
const work = mkdtempSync(join(tmpdir(), 'strongroom-backup-bench-'));
const lines: string[] = [];
try {
  const database = await openDatabase({
    kind: 'postgres',
    url: new Secret(benchDb.url),
    poolSize: 8,
    statementTimeoutMs: 600_000,
    roles: 'auto',
  });
  const core = composeCore({
    database,
    keyProvider: new LocalKeyProvider({ current: Buffer.alloc(32, 7) }),
    objects: new FsObjectStore({ rootDir: join(work, 'objects') }),
    backupLocations: [
      { name: 'a', store: new FsObjectStore({ rootDir: join(work, 'a') }) },
      { name: 'b', store: new FsObjectStore({ rootDir: join(work, 'b') }) },
    ],
  });
  await prepareControlPlane(core);
  const { tenant } = await core.tenants.create({ slug: 'bench', name: 'Bench', ownerEmail: 'o@bench.test' });
  const schema = tenantSchemaName(tenant.id);
  const userId = newId();
  const projectId = newId();
  await core.withTenant(tenant.id, async ({ db }) => {
    await db
      .insertInto('users')
      .values({ id: userId, email: 'u@b.test', display_name: 'U', status: 'active', role: 'owner' })
      .execute();
    await db.insertInto('projects').values({ id: projectId, name: 'P', created_by: userId }).execute();
  });
  const create = (i: number) =>
    core.withTenant(tenant.id, ({ db }) =>
      db
        .insertInto('records')
        .values({
          id: newId(),
          project_id: projectId,
          collection: 'bench',
          data: JSON.stringify({ name: `record ${i}`, body: 'x'.repeat(150) }),
          created_by: userId,
          updated_by: userId,
        })
        .execute(),
    );
  const trigger = (on: boolean) =>
    sql`alter table ${sql.id(schema, 'records')} ${sql.raw(on ? 'enable' : 'disable')} trigger _journal`.execute(
      database.db,
    );

  // 1. Journal cost: the same single-record creates (one transaction each), journal on and off, twice.
  const rate = async (on: boolean) => {
    await trigger(on);
    const start = process.hrtime.bigint();
    for (let i = 0; i < writeOps; i++) await create(i);
    return writeOps / seconds(start);
  };
  const rates = { on: [] as number[], off: [] as number[] };
  await rate(true); // warm-up: connections, plans, caches
  for (let round = 0; round < 2; round++) {
    rates.off.push(await rate(false));
    rates.on.push(await rate(true));
  }
  const best = (xs: number[]) => Math.max(...xs);
  const journalCost = 1 - best(rates.on) / best(rates.off);
  await core.backups.shipTenant(tenant.id);

  // 2. A tenant of `recordCount` records of about 200 bytes, loaded in bulk (journal off for the load).
  await trigger(false);
  await sql`insert into ${sql.id(schema, 'records')} (id, project_id, collection, data, created_by, updated_by)
    select gen_random_uuid(), ${projectId}, 'bench', jsonb_build_object('name', 'record ' || g, 'body', repeat('y', 150)), ${userId}, ${userId}
    from generate_series(1, ${recordCount}) g`.execute(database.db);
  await trigger(true);
  await sql`analyze ${sql.id(schema, 'records')}`.execute(database.db);
  const { rows: sizeRows } = await sql<{ bytes: string }>`
    select pg_total_relation_size(${`${schema}.records`})::text as bytes`.execute(database.db);
  const tableBytes = Number(sizeRows[0]!.bytes);

  // 3. Snapshot vs pg_dump -Fc of the same schema.
  let start = process.hrtime.bigint();
  const snapshot = await core.backups.snapshotTenant(tenant.id);
  const snapshotS = seconds(start);
  const dumpFile = join(work, 'bench.dump');
  start = process.hrtime.bigint();
  const dump = spawnSync('pg_dump', ['-Fc', '-n', schema, '-f', dumpFile, benchDb.url], { encoding: 'utf8' });
  const dumpS = seconds(start);
  const dumpOk = dump.status === 0;

  // 4. Journal entries after the snapshot, shipped, then a restore to now; pg_restore for comparison.
  await sql`update ${sql.id(schema, 'records')} set data = data || '{"touched": true}'::jsonb
    where seq in (select seq from ${sql.id(schema, 'records')} order by seq limit ${journalEntries})`.execute(
    database.db,
  );
  start = process.hrtime.bigint();
  let shipped = 0;
  for (;;) {
    const summary = await core.backups.shipTenant(tenant.id);
    shipped += summary.segmentsSealed;
    if (summary.segmentsSealed === 0) break;
  }
  const shipS = seconds(start);
  await new Promise((r) => setTimeout(r, 20));
  const at = new Date();
  start = process.hrtime.bigint();
  const restored = await core.backups.restore({ tenant: 'bench', at, intoSlug: 'bench-restored' });
  // Includes the new tenant's own first snapshot.
  const restoreS = seconds(start);
  let pgRestoreS = Number.NaN;
  if (dumpOk) {
    const target = await createBenchDatabase(adminUrl);
    try {
      start = process.hrtime.bigint();
      const result = spawnSync('pg_restore', ['--no-owner', '--no-acl', '-d', target.url, dumpFile], {
        encoding: 'utf8',
      });
      if (result.status === 0) pgRestoreS = seconds(start);
    } finally {
      // Not target.drop(): the tenant role it would drop still owns the source schema.
      const admin = adminKysely(adminUrl);
      await sql`drop database if exists ${sql.id(target.name)} with (force)`.execute(admin);
      await admin.destroy();
    }
  }

  // 5. RPO under a steady write load: 10 s of creates (about 50/s) while the shipper runs every 2 s.
  let maxRpoMs = 0;
  let writing = true;
  const writer = (async () => {
    let i = 0;
    while (writing) {
      await create(i++);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const shipper = setInterval(() => void core.backups.ship().catch(() => undefined), 2_000);
  const loadStart = Date.now();
  while (Date.now() - loadStart < 10_000) {
    const status = await core.backups.status();
    for (const s of status) for (const l of s.locations) maxRpoMs = Math.max(maxRpoMs, l.rpoMs);
    await new Promise((r) => setTimeout(r, 250));
  }
  writing = false;
  await writer;
  clearInterval(shipper);

  const rows = snapshot.rowCount;
  lines.push(
    '# Backup bench',
    '',
    `Generated by \`node bench/backups.ts\` on ${new Date().toISOString()}; ${cpus().length} cores shared with other work, Postgres at ${new URL(adminUrl).host}, both backup locations folders on the same disk.`,
    '',
    '| measure | result |',
    '| --- | --- |',
    `| record creates, one transaction each, journal off (best of 2 × ${writeOps}) | ${best(rates.off).toFixed(0)}/s |`,
    `| same, journal on | ${best(rates.on).toFixed(0)}/s |`,
    `| journal cost on creates (target ≤ 20 %) | ${(journalCost * 100).toFixed(1)} % |`,
    `| snapshot of ${rows.toLocaleString('en')} rows (records table ${mb(tableBytes).toFixed(0)} MB), zstd + AES-GCM, written to 2 locations | ${snapshotS.toFixed(2)} s, ${(mb(tableBytes) / snapshotS).toFixed(1)} MB/s of table, ${mb(snapshot.sealedBytes).toFixed(1)} MB sealed |`,
    `| \`pg_dump -Fc -n <schema>\` of the same schema | ${dumpOk ? `${dumpS.toFixed(2)} s, ${(mb(tableBytes) / dumpS).toFixed(1)} MB/s, ${mb(statSync(dumpFile).size).toFixed(1)} MB` : `failed: ${dump.stderr.trim().split('\n')[0]}`} |`,
    `| ratio pg_dump time / snapshot time (target ≥ 1.0) | ${dumpOk ? (dumpS / snapshotS).toFixed(2) : '-'} |`,
    `| shipping ${journalEntries.toLocaleString('en')} journal entries (${shipped} segments) to 2 locations | ${shipS.toFixed(2)} s |`,
    `| restore to now: snapshot + ${restored.entriesReplayed.toLocaleString('en')} journal entries replayed, then the new tenant's own snapshot (target ≤ 30 s) | ${restoreS.toFixed(2)} s |`,
    `| \`pg_restore\` of the dump into an empty database | ${Number.isNaN(pgRestoreS) ? '-' : `${pgRestoreS.toFixed(2)} s`} |`,
    `| worst RPO seen over 10 s of ~50 creates/s, shipping every 2 s (target ≤ 5 s) | ${(maxRpoMs / 1000).toFixed(2)} s |`,
    '',
  );
  writeFileSync(join(benchDir, 'RESULTS-backups.md'), lines.join('\n'));
  console.log(lines.join('\n'));
  await database.close();
} finally {
  await benchDb.drop();
  rmSync(work, { recursive: true, force: true });
}
