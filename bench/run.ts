// Strongroom scale and load bench: provisioning, fleet migration and HTTP throughput at 1 and 1,000
// tenants on a Postgres server, side by side with the peer (Directus) on the same server.
// Run: npm run bench   (node bench/run.ts; env knobs in bench/README.md). Writes bench/RESULTS.md.

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { generate as generateTotp } from 'otplib';
import { LocalKeyProvider } from '../src/adapters/keys/key-provider.local.ts';
import { FsObjectStore } from '../src/adapters/object-store/object-store.fs.ts';
import { type Database, openDatabase } from '../src/db/database.ts';
import type { Migration } from '../src/db/migrator.ts';
import { type Core, composeCore, prepareControlPlane } from '../src/main/compose.ts';
import { Secret } from '../src/platform/secret.ts';
import { renderAttachments, runAttachmentScenarios } from './attachments.ts';
import { renderIdentity, runIdentityScenarios } from './identity.ts';
import type { LoadResult, LoadSpec } from './load.ts';
import { renderNoisyNeighbour, runNoisyNeighbour } from './noisy-neighbour.ts';
import {
  dropDirectusDatabase,
  installDirectus,
  loadPeer,
  type PeerOptions,
  type RunningPeer,
  startDirectus,
} from './peer.ts';
import {
  adminKysely,
  type BenchDatabase,
  clientBackendPids,
  createBenchDatabase,
  postgresFacts,
} from './postgres.ts';
import { cpuMs, fetchOnce, killStarted, runLoadProcess } from './processes.ts';
import { type BenchResults, type HttpPhase, type Measured, machineFacts, renderResults } from './report.ts';
import { SqlTimer } from './sql-timing.ts';
import { fmt } from './stats.ts';
import { type StrongroomServer, startStrongroom } from './strongroom-server.ts';

const benchDir = dirname(fileURLToPath(import.meta.url));
const packageDir = dirname(benchDir);

function envNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value < min || value > max)
    throw new Error(`${name} must be a number in ${min}..${max}`);
  return value;
}

const settings = {
  adminUrl: process.env.BENCH_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
  tenants: envNumber('BENCH_TENANTS', 1000, 2, 10_000),
  durationS: envNumber('BENCH_DURATION_S', 10, 1, 60),
  warmupS: envNumber('BENCH_WARMUP_S', 3, 0, 30),
  runs: envNumber('BENCH_RUNS', 5, 1, 9),
  connections: envNumber('BENCH_CONNECTIONS', 32, 1, 256),
  peer: process.env.BENCH_PEER !== '0',
  peersDir: process.env.BENCH_PEERS_DIR || '/work/shared/bench/peers',
  peerInstallDir: process.env.BENCH_PEER_DIR || '/tmp/perf/directus',
  peerVersion: process.env.DIRECTUS_VERSION || '11.3.5',
  peerNode: process.env.BENCH_PEER_NODE || '/usr/bin/node',
  peerSeed: envNumber('BENCH_PEER_SEED', 10_000, 1, 100_000),
  /**
   * Which parts run: `tenants` (provisioning, HTTP at 1 and N tenants, fleet, peer), `identity`,
   * `attachments` (upload and download rates against raw AES-GCM, memory under parallel uploads),
   * `noisy` (one tenant flooding at 10× its rate limit beside another's steady load).
   */
  scenarios: parseScenarios(process.env.BENCH_SCENARIOS),
  identityRuns: envNumber('BENCH_IDENTITY_RUNS', 3, 1, 9),
  identityDurationS: envNumber('BENCH_IDENTITY_DURATION_S', 8, 1, 60),
  attachmentSizeMiB: envNumber('BENCH_ATTACHMENT_MIB', 64, 1, 1024),
  attachmentParallel: envNumber('BENCH_ATTACHMENT_PARALLEL', 16, 1, 64),
  attachmentParallelMiB: envNumber('BENCH_ATTACHMENT_PARALLEL_MIB', 256, 1, 1024),
  /** The attachments scenario on the S3 store too (s3rver); BENCH_ATTACHMENT_S3=0 skips it. */
  attachmentS3: process.env.BENCH_ATTACHMENT_S3 !== '0',
  /** Another checkout whose server runs beside this one in the attachments scenario (before/after). */
  attachmentBaselineDir: process.env.BENCH_ATTACHMENT_BASELINE_DIR || undefined,
  attachmentBaselineParallel: process.env.BENCH_ATTACHMENT_BASELINE_PARALLEL !== '0',
  noisyRounds: envNumber('BENCH_NOISY_ROUNDS', 5, 1, 20),
  noisyPhaseS: envNumber('BENCH_NOISY_PHASE_S', 10, 2, 60),
  /** Whole-run watchdog: the bench stops itself (and what it started) after this. */
  maxMinutes: envNumber('BENCH_MAX_MINUTES', 60, 1, 240),
};

function parseScenarios(raw: string | undefined): Set<'tenants' | 'identity' | 'attachments' | 'noisy'> {
  const known = ['tenants', 'identity', 'attachments', 'noisy'] as const;
  if (raw === undefined || raw === '' || raw === 'all') return new Set(known);
  const picked = raw.split(',').map((part) => part.trim());
  for (const name of picked) {
    if (!(known as readonly string[]).includes(name))
      throw new Error(`BENCH_SCENARIOS: unknown scenario ${name} (known: ${known.join(', ')}, all)`);
  }
  return new Set(picked as Array<(typeof known)[number]>);
}

const fleetOptions = { batchSize: 50, concurrency: 4, canarySize: 5 };

/** The next release's tenant migration for the fleet scenario: one nullable column, nothing else. */
const addSettingsBenchNote: Migration = {
  name: '20991231000000-add-settings-bench-note',
  async up({ db }) {
    await db.schema.alterTable('settings').addColumn('bench_note', 'text').execute();
  },
  async down({ db }) {
    await db.schema.alterTable('settings').dropColumn('bench_note').execute();
  },
};

function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/**
 * Server and database CPU around one measured run. Under outside noise req/s moves a lot, but the
 * CPU our server process and its Postgres backends spend per request barely does: the steadier
 * view of "does a request cost more at 1,000 tenants".
 */
class CpuProbe {
  readonly #admin = adminKysely(settings.adminUrl);

  /** Client backends connected to `database` (the probe's own connection is to another database). */
  #backends(database: string): Promise<number[]> {
    return clientBackendPids(this.#admin, database);
  }

  async around(target: CpuTarget, measure: () => Promise<LoadResult>): Promise<Measured> {
    const before = new Map((await this.#backends(target.database)).map((pid) => [pid, cpuMs(pid)]));
    const server0 = cpuMs(target.serverPid);
    const result = await measure();
    const serverMs = cpuMs(target.serverPid) - server0;
    let dbMs = 0;
    // Backends opened during the run count from zero; one closed during it is lost (pools keep
    // their connections while busy, so that is rare).
    for (const pid of await this.#backends(target.database)) dbMs += cpuMs(pid) - (before.get(pid) ?? 0);
    const requests = Math.max(1, result.total);
    return {
      ...result,
      server_cpu_ms_per_req: serverMs / requests,
      db_cpu_ms_per_req: dbMs / requests,
      server_cpu_pct: (serverMs / (result.duration_s * 1000)) * 100,
      db_cpu_pct: (dbMs / (result.duration_s * 1000)) * 100,
      client_cpu_pct:
        result.client_cpu_ms === undefined
          ? undefined
          : (result.client_cpu_ms / (result.duration_s * 1000)) * 100,
    };
  }

  close(): Promise<void> {
    return this.#admin.destroy();
  }
}

interface CpuTarget {
  /** The server's own process (not its `timeout` wrapper). */
  serverPid: number;
  /** The database its backends are connected to. */
  database: string;
}

function logResult(result: Measured): void {
  log(
    `  ${result.label}: ${Math.round(result.rps_avg)} req/s, p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms, ` +
      `server ${fmt(result.server_cpu_ms_per_req ?? Number.NaN, 3)} + db ${fmt(result.db_cpu_ms_per_req ?? Number.NaN, 3)} CPU-ms/req` +
      (result.non2xx || result.errors ? `, non2xx ${result.non2xx}, errors ${result.errors}` : ''),
  );
}

/** Runs bench/load.ts once (its own process) and returns its JSON line. */
/** A warm-up run (discarded), then one measured autocannon run against our server with CPU sampled around it. */
async function loadOurs(
  probe: CpuProbe,
  target: CpuTarget,
  spec: Omit<LoadSpec, 'connections' | 'durationS' | 'warmupS'> & { connections?: number },
  timing: { durationS: number; warmupS: number } = settings,
): Promise<Measured> {
  const base = { ...spec, connections: spec.connections ?? settings.connections, warmupS: 0 };
  if (timing.warmupS > 0) await runLoadProcess({ ...base, label: 'warm-up', durationS: timing.warmupS });
  const result = await probe.around(target, () => runLoadProcess({ ...base, durationS: timing.durationS }));
  logResult(result);
  return result;
}

interface HttpTarget {
  origin: string;
  /** Extra headers a request through a TLS-terminating proxy carries. */
  proxyHeaders: Record<string, string>;
  suffix: string;
}

function healthzSpec(target: HttpTarget, label: string) {
  return { label: `${label}${target.suffix}`, origin: target.origin, path: '/healthz' };
}

function readSpec(target: HttpTarget, label: string, staffKey: string, idsFile: string) {
  return {
    label: `${label}${target.suffix}`,
    origin: target.origin,
    path: '/api/v1/ops/tenants/{id}/schema',
    idsFile,
    headers: { authorization: `Bearer ${staffKey}`, ...target.proxyHeaders },
  };
}

/** Checks the tenant-scoped read answers 200 with the tenant's own migration list before loading it. */
async function assertReadWorks(target: HttpTarget, staffKey: string, tenantId: string): Promise<void> {
  const { status, body } = await fetchOnce(`${target.origin}/api/v1/ops/tenants/${tenantId}/schema`, {
    authorization: `Bearer ${staffKey}`,
    ...target.proxyHeaders,
  });
  if (status !== 200 || !body.includes('"applied"'))
    throw new Error(`tenant read answered ${status}: ${body}`);
}

/**
 * healthz and the tenant read (and, when `hotIdsFile` is given, the read of one hot tenant),
 * rotating which goes first, `runs` times each.
 */
async function measureHttp(
  probe: CpuProbe,
  cpu: CpuTarget,
  target: HttpTarget,
  tenantsLabel: string,
  staffKey: string,
  idsFile: string,
  hotIdsFile?: string,
): Promise<HttpPhase> {
  const phase: HttpPhase = { healthz: [], read: [], ...(hotIdsFile ? { hot: [] } : {}) };
  const steps: Array<() => Promise<void>> = [
    async () => {
      phase.healthz.push(await loadOurs(probe, cpu, healthzSpec(target, `healthz@${tenantsLabel}`)));
    },
    async () => {
      phase.read.push(
        await loadOurs(probe, cpu, readSpec(target, `tenant-read@${tenantsLabel}`, staffKey, idsFile)),
      );
    },
  ];
  if (hotIdsFile) {
    steps.push(async () => {
      phase.hot!.push(
        await loadOurs(
          probe,
          cpu,
          readSpec(target, `tenant-read@${tenantsLabel} one hot tenant`, staffKey, hotIdsFile),
        ),
      );
    });
  }
  for (let run = 0; run < settings.runs; run++) {
    // Rotate the order, so no scenario always gets the same slot.
    for (let i = 0; i < steps.length; i++) await steps[(run + i) % steps.length]!();
  }
  return phase;
}

/** Creates tenants one after another, timing each `core.tenants.create` (what `strongroom tenant create` does minus process start). */
async function provision(
  core: Core,
  from: number,
  to: number,
  durationsMs: number[],
  ids: string[],
): Promise<void> {
  for (let i = from; i < to; i++) {
    const slug = `bench-${String(i).padStart(5, '0')}`;
    const t0 = performance.now();
    const created = await core.tenants.create({
      slug,
      name: `Bench tenant ${i}`,
      ownerEmail: `owner${i}@bench.test`,
    });
    durationsMs.push(performance.now() - t0);
    ids.push(created.tenant.id);
    if ((i + 1) % 100 === 0) log(`  provisioned ${i + 1}/${settings.tenants}`);
  }
}

async function main(): Promise<void> {
  if (Number(process.versions.node.split('.')[0]) < 24)
    throw new Error('run the bench with Node 24 (npm run bench)');
  const startedAt = new Date();
  const outDir = join(benchDir, 'out');
  mkdirSync(outDir, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'sr-bench-'));
  const cleanups: Array<() => Promise<void>> = [async () => rmSync(tmp, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const step of cleanups.reverse())
      await step().catch((error) => log(`cleanup: ${(error as Error).message}`));
    cleanups.length = 0;
  };
  let interrupted = false;
  const onSignal = (signal: string) => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping and cleaning up`);
    killStarted();
    cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  const watchdog = setTimeout(
    () => onSignal(`watchdog (${settings.maxMinutes} min)`),
    settings.maxMinutes * 60_000,
  );
  watchdog.unref();

  const peerOptions: PeerOptions = {
    peersDir: settings.peersDir,
    installDir: settings.peerInstallDir,
    version: settings.peerVersion,
    nodeBin: settings.peerNode,
    adminUrl: settings.adminUrl,
    seedCount: settings.peerSeed,
    logDir: outDir,
  };

  try {
    const pg = await postgresFacts(settings.adminUrl);
    log(
      `postgres: ${pg.version}; scenarios ${[...settings.scenarios].join(', ')}` +
        (settings.scenarios.has('tenants')
          ? `; ${settings.tenants} tenants, ${settings.runs} runs x ${settings.durationS} s at c=${settings.connections}`
          : ''),
    );
    if (settings.peer && (settings.scenarios.has('tenants') || settings.scenarios.has('identity'))) {
      // Before any measurement, so the (minutes-long, CPU-heavy) npm install never overlaps one.
      log(
        `peer: installing directus@${settings.peerVersion} into ${settings.peerInstallDir} (skipped if present)`,
      );
      await installDirectus(peerOptions);
    }

    const benchDb: BenchDatabase = await createBenchDatabase(settings.adminUrl);
    cleanups.push(() => benchDb.drop());
    log(`database ${benchDb.name}`);
    const masterKey = randomBytes(32);
    const database: Database = await openDatabase({
      kind: 'postgres',
      url: new Secret(benchDb.url),
      poolSize: 8,
      statementTimeoutMs: 30_000,
      roles: 'auto',
    });
    cleanups.push(() => database.close());
    const probe = new CpuProbe();
    cleanups.push(() => probe.close());
    const core = composeCore({
      database,
      keyProvider: new LocalKeyProvider({ current: masterKey }),
      objects: new FsObjectStore({ rootDir: join(tmp, 'objects') }),
    });
    await prepareControlPlane(core);
    if (!database.rolesEnabled)
      throw new Error('the bench user cannot create roles: the tenant read would not switch role');
    // A staff member enrolled the way a person is: setup token, authenticator secret, a current code.
    const staffSetup = await core.staff.create({
      email: 'bench@bench.test',
      displayName: 'Bench',
      role: 'operator',
    });
    const { secret: staffTotp } = await core.staff.beginSetup(staffSetup.setupToken);
    const { apiKey: staffKey } = await core.staff.completeSetup(
      staffSetup.setupToken,
      await generateTotp({ secret: staffTotp }),
    );

    if (settings.scenarios.has('tenants')) {
      // ---- 1 tenant: provision it, start the server, measure while it is the only tenant ----
      const timer = new SqlTimer();
      timer.start();
      const provisionMs: number[] = [];
      const tenantIds: string[] = [];
      let t0 = performance.now();
      await provision(core, 0, 1, provisionMs, tenantIds);
      let provisionWallMs = performance.now() - t0;

      const server: StrongroomServer = await startStrongroom({
        packageDir,
        databaseUrl: benchDb.url,
        masterKeyHex: masterKey.toString('hex'),
        dataDir: join(tmp, 'server-tls'),
        logFile: join(outDir, 'server-tls.log'),
      });
      cleanups.push(() => server.stop());
      log(`server ${server.origin} (pid ${server.pid}) up in ${Math.round(server.startMs)} ms`);
      const tls: HttpTarget = { origin: server.origin, proxyHeaders: {}, suffix: '' };
      const tlsCpu: CpuTarget = { serverPid: server.nodePid, database: benchDb.name };
      const oneIdFile = join(tmp, 'ids-1.txt');
      writeFileSync(oneIdFile, `${tenantIds[0]}\n`);
      await assertReadWorks(tls, staffKey, tenantIds[0]!);
      // A fresh server's JIT and connection pool are cold; without priming, the 1-tenant phase
      // (always first) would be handicapped and the 1,000/1 ratio flattered. Results discarded.
      log('priming the fresh server (not measured)');
      const priming = { durationS: 5, warmupS: 0 };
      await loadOurs(probe, tlsCpu, healthzSpec(tls, 'priming healthz'), priming);
      await loadOurs(probe, tlsCpu, readSpec(tls, 'priming tenant-read', staffKey, oneIdFile), priming);
      log('HTTP at 1 tenant');
      const provisionShares1 = timer.take();
      const http1 = await measureHttp(probe, tlsCpu, tls, '1', staffKey, oneIdFile);

      // ---- provision the rest ----
      log(`provisioning ${settings.tenants - 1} more tenants, one after another`);
      timer.take();
      t0 = performance.now();
      await provision(core, 1, settings.tenants, provisionMs, tenantIds);
      provisionWallMs += performance.now() - t0;
      const provisionShares = mergeShares(provisionShares1, timer.take());

      // ---- 1,000 tenants ----
      const allIdsFile = join(tmp, 'ids-all.txt');
      writeFileSync(allIdsFile, `${tenantIds.join('\n')}\n`);
      await assertReadWorks(tls, staffKey, tenantIds.at(-1)!);
      // Interleaved with the random-tenant read: the first tenant alone (the one the 1-tenant phase
      // read), so the cost of spreading over 1,000 tenants is seen without the drift between phases.
      log(`HTTP at ${settings.tenants} tenants`);
      const httpN = await measureHttp(
        probe,
        tlsCpu,
        tls,
        String(settings.tenants),
        staffKey,
        allIdsFile,
        oneIdFile,
      );

      // ---- fleet migration with the next release's migration list ----
      log('fleet migration');
      const next = composeCore({
        database,
        objects: core.objects,
        keyProvider: new LocalKeyProvider({ current: masterKey }),
        tenantMigrations: [...core.tenantMigrations, addSettingsBenchNote],
      });
      timer.take();
      t0 = performance.now();
      const fleet = await next.fleet.run({
        ...fleetOptions,
        onProgress: (p) => {
          if (p.migrated > 0 && p.migrated % 200 === 0) log(`  migrated ${p.migrated}/${p.total}`);
        },
      });
      const fleetWallMs = performance.now() - t0;
      const fleetShares = timer.take();
      timer.stop();
      const { rows: columnRows } = await sql<{ n: number }>`
        select count(*)::int as n from information_schema.columns
        where table_name = 'settings' and column_name = 'bench_note' and table_schema ~ '^t_[0-9a-f]{32}$'`.execute(
        database.db,
      );
      const fleetVerified = columnRows[0]?.n ?? 0;
      log(
        `fleet: ${fleet.status}, ${fleet.migrated}/${fleet.total} in ${(fleetWallMs / 1000).toFixed(1)} s; column present in ${fleetVerified} schemas`,
      );

      // ---- peer, interleaved with ours (TLS and plain HTTP behind-proxy mode) ----
      let peerResults: BenchResults['peer'];
      if (settings.peer) {
        log('peer: our server in behind-proxy mode (plain HTTP) for a like-for-like transport');
        const proxied = await startStrongroom({
          packageDir,
          databaseUrl: benchDb.url,
          masterKeyHex: masterKey.toString('hex'),
          dataDir: join(tmp, 'server-http'),
          logFile: join(outDir, 'server-http.log'),
          behindProxy: true,
        });
        cleanups.push(() => proxied.stop());
        const http: HttpTarget = {
          origin: proxied.origin,
          proxyHeaders: { 'x-forwarded-proto': 'https' },
          suffix: ' (http)',
        };
        const httpCpu: CpuTarget = { serverPid: proxied.nodePid, database: benchDb.name };
        await assertReadWorks(http, staffKey, tenantIds[0]!);
        log('peer: directus bootstrap on a fresh `directus` database, setup and seed');
        cleanups.push(() => dropDirectusDatabase(settings.adminUrl));
        const peer: RunningPeer = await startDirectus(peerOptions);
        cleanups.push(() => peer.stop());
        log(`peer: directus ${peer.version} on node ${peer.nodeVersion} at ${peer.url}`);
        const rows: Record<string, Measured[]> = {};
        const push = (key: string, result: Measured) => {
          rows[key] ??= [];
          rows[key].push(result);
        };
        const n = String(settings.tenants);
        const loadDirectus = (mode: 'plain' | 'get-one', label: string) =>
          measurePeer(probe, peer, mode, label, settings.durationS);
        const steps: Array<[string, () => Promise<Measured>]> = [
          ['directus-ping', () => loadDirectus('plain', 'directus-ping')],
          ['ours-healthz-tls', () => loadOurs(probe, tlsCpu, healthzSpec(tls, `healthz@${n}`))],
          ['ours-healthz-http', () => loadOurs(probe, httpCpu, healthzSpec(http, `healthz@${n}`))],
          ['directus-item', () => loadDirectus('get-one', 'directus-item')],
          [
            'ours-read-tls',
            () => loadOurs(probe, tlsCpu, readSpec(tls, `tenant-read@${n}`, staffKey, allIdsFile)),
          ],
          [
            'ours-read-http',
            () => loadOurs(probe, httpCpu, readSpec(http, `tenant-read@${n}`, staffKey, allIdsFile)),
          ],
        ];
        for (let run = 0; run < settings.runs; run++) {
          // Rotate the order, so no server always follows the same one.
          for (let i = 0; i < steps.length; i++) {
            const [key, step] = steps[(run + i) % steps.length]!;
            push(key, await step());
          }
        }
        peerResults = {
          version: peer.version,
          nodeVersion: peer.nodeVersion,
          bootstrapMs: peer.bootstrapMs,
          seedMs: peer.seedMs,
          seedCount: settings.peerSeed,
          runs: rows,
        };
      }

      const results: BenchResults = {
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        machine: machineFacts(),
        postgres: pg,
        settings: {
          tenants: settings.tenants,
          durationS: settings.durationS,
          warmupS: settings.warmupS,
          runs: settings.runs,
          connections: settings.connections,
          fleet: fleetOptions,
        },
        provisioning: { durationsMs: provisionMs, wallMs: provisionWallMs, statements: provisionShares },
        fleet: {
          summary: fleet,
          wallMs: fleetWallMs,
          verifiedColumns: fleetVerified,
          statements: fleetShares,
        },
        http: { one: http1, many: httpN },
        peer: peerResults,
      };
      writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
      writeFileSync(join(benchDir, 'RESULTS.md'), renderResults(results));
      log('wrote bench/RESULTS.md and bench/out/results.json');
    }

    if (settings.scenarios.has('identity')) {
      log(
        `identity scenarios: ${settings.identityRuns} runs x ${settings.warmupS} s warm-up + ${settings.identityDurationS} s at c=${settings.connections}`,
      );
      const identityStartedAt = new Date();
      const load0 = loadavg()[0]!;
      let peer: Parameters<typeof runIdentityScenarios>[0]['peer'];
      if (settings.peer) {
        log('identity: peer (directus) bootstrap on a fresh `directus` database, setup and seed');
        cleanups.push(() => dropDirectusDatabase(settings.adminUrl));
        const directus: RunningPeer = await startDirectus(peerOptions);
        cleanups.push(() => directus.stop());
        const loadDirectus = (mode: 'get-one' | 'post', label: string) =>
          measurePeer(probe, directus, mode, label, settings.identityDurationS);
        peer = {
          describe: `Directus ${directus.version} on Node ${directus.nodeVersion}, same Postgres server, plain HTTP (it has no TLS of its own), a non-admin role with a static token; \`records\` collection seeded with ${settings.peerSeed} items, random ids`,
          getOne: () => loadDirectus('get-one', 'directus-get-one'),
          create: () => loadDirectus('post', 'directus-create'),
        };
      }
      const identity = await runIdentityScenarios({
        peer,
        core,
        databaseUrl: benchDb.url,
        cacheUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
        databaseName: benchDb.name,
        masterKeyHex: masterKey.toString('hex'),
        packageDir,
        benchDir,
        tmp,
        outDir,
        runs: settings.identityRuns,
        durationS: settings.identityDurationS,
        warmupS: settings.warmupS,
        connections: settings.connections,
        load: (target, spec, timing) => loadOurs(probe, target, spec, timing),
        log,
        cleanups,
      });
      const meta = {
        startedAt: identityStartedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        machine: machineFacts(),
        postgres: pg,
        loadavg: `${load0.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}`,
      };
      writeFileSync(
        join(outDir, 'results-identity.json'),
        `${JSON.stringify({ ...meta, ...identity }, null, 2)}\n`,
      );
      writeFileSync(join(benchDir, 'RESULTS-identity.md'), renderIdentity(identity, meta));
      log('wrote bench/RESULTS-identity.md and bench/out/results-identity.json');
    }

    if (settings.scenarios.has('attachments')) {
      const attachmentsStartedAt = new Date();
      const load0 = loadavg()[0]!;
      const attachments = await runAttachmentScenarios({
        core,
        databaseUrl: benchDb.url,
        masterKeyHex: masterKey.toString('hex'),
        packageDir,
        benchDir,
        tmp,
        outDir,
        runs: settings.identityRuns,
        sizeMiB: settings.attachmentSizeMiB,
        parallel: settings.attachmentParallel,
        parallelSizeMiB: settings.attachmentParallelMiB,
        s3: settings.attachmentS3,
        baselineDir: settings.attachmentBaselineDir,
        baselineParallel: settings.attachmentBaselineParallel,
        log,
        cleanups,
      });
      const meta = {
        startedAt: attachmentsStartedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        machine: machineFacts(),
        loadavg: `${load0.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}`,
      };
      writeFileSync(
        join(outDir, 'results-attachments.json'),
        `${JSON.stringify({ ...meta, ...attachments }, null, 2)}\n`,
      );
      writeFileSync(join(benchDir, 'RESULTS-attachments.md'), renderAttachments(attachments, meta));
      log('wrote bench/RESULTS-attachments.md and bench/out/results-attachments.json');
    }

    if (settings.scenarios.has('noisy')) {
      const startedAt = new Date();
      const load0 = loadavg()[0]!;
      log(`noisy neighbour: ${settings.noisyRounds} rounds x 2 x ${settings.noisyPhaseS} s`);
      const noisy = await runNoisyNeighbour({
        core,
        databaseUrl: benchDb.url,
        masterKeyHex: masterKey.toString('hex'),
        packageDir,
        tmp,
        cacheUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
        rounds: settings.noisyRounds,
        phaseS: settings.noisyPhaseS,
        aLimit: 100,
        bRate: 200,
        log,
      });
      const meta = {
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        machine: machineFacts(),
        loadavg: `${load0.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}`,
      };
      writeFileSync(
        join(outDir, 'results-noisy.json'),
        `${JSON.stringify({ ...meta, ...noisy }, null, 2)}\n`,
      );
      writeFileSync(join(benchDir, 'RESULTS-noisy.md'), renderNoisyNeighbour(noisy, meta));
      log('wrote bench/RESULTS-noisy.md and bench/out/results-noisy.json');
    }
  } finally {
    clearTimeout(watchdog);
    if (!interrupted) await cleanup();
  }
}

/** One measured load run against the peer (after its warm-up), with the CPU it and its backends spent. */
async function measurePeer(
  probe: CpuProbe,
  peer: RunningPeer,
  mode: 'plain' | 'get-one' | 'post',
  label: string,
  durationS: number,
): Promise<Measured> {
  const peerCpu: CpuTarget = { serverPid: peer.nodePid, database: peer.database };
  let measured: Measured | undefined;
  await loadPeer(
    { peersDir: settings.peersDir, packageDir },
    peer,
    {
      mode,
      label,
      connections: settings.connections,
      durationS,
      warmupS: settings.warmupS,
      ids: settings.peerSeed,
    },
    async (measure) => {
      measured = await probe.around(peerCpu, measure);
      return measured;
    },
  );
  logResult(measured!);
  return measured!;
}

function mergeShares(
  a: ReturnType<SqlTimer['take']>,
  b: ReturnType<SqlTimer['take']>,
): ReturnType<SqlTimer['take']> {
  const merged = new Map<string, { count: number; totalMs: number }>();
  for (const s of [...a, ...b]) {
    const e = merged.get(s.shape) ?? { count: 0, totalMs: 0 };
    e.count += s.count;
    e.totalMs += s.totalMs;
    merged.set(s.shape, e);
  }
  return [...merged].map(([shape, v]) => ({ shape, ...v })).sort((x, y) => y.totalMs - x.totalMs);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    log(`bench failed: ${(error as Error)?.stack ?? String(error)}`);
    process.exit(1);
  },
);
