// Identity scenarios of the bench: authenticated reads (session token, API key) against a bare
// Fastify ceiling in the same run, login throughput, and the server's peak memory under a login
// burst. Run by bench/run.ts (BENCH_SCENARIOS=identity for these alone); writes
// bench/RESULTS-identity.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { Core } from '../src/main/compose.ts';
import { benchPassword, benchTenant } from './fixtures.ts';
import type { LoadSpec } from './load.ts';
import { fetchOnce, startBareServer } from './processes.ts';
import type { Measured } from './report.ts';
import { fmt, median } from './stats.ts';
import { type StrongroomServer, startStrongroom } from './strongroom-server.ts';

/** Targets from the identity issue (req/s on the 2-core bench machine, load generator included). */
export const identityTargets = { meRps: 5_000, projectReadRps: 3_000 };
/** Issue 4's targets for records, measured here beside the identity routes (and the peer, unless BENCH_PEER=0). */
export const recordTargets = { readRps: 3_000, createRps: 2_000 };

export interface CpuTarget {
  /** The server's own process (not its `timeout` wrapper). */
  serverPid: number;
  /** The database its backends are connected to. */
  database: string;
}

export type LoadFn = (
  cpu: CpuTarget,
  spec: Omit<LoadSpec, 'durationS' | 'warmupS'>,
  timing: { durationS: number; warmupS: number },
) => Promise<Measured>;

export interface IdentityContext {
  core: Core;
  databaseUrl: string;
  /** The shared cache the server uses (`STRONGROOM_CACHE`): Redis, as several nodes would share. */
  cacheUrl: string;
  databaseName: string;
  masterKeyHex: string;
  packageDir: string;
  benchDir: string;
  tmp: string;
  outDir: string;
  runs: number;
  durationS: number;
  warmupS: number;
  connections: number;
  load: LoadFn;
  /**
   * The peer's single-item GET and create (Directus, started by the caller), measured interleaved
   * with ours; absent with BENCH_PEER=0.
   */
  peer?: {
    describe: string;
    getOne(): Promise<Measured>;
    create(): Promise<Measured>;
  };
  log(message: string): void;
  cleanups: Array<() => Promise<void>>;
}

export interface MemorySample {
  vmRssKiB: number;
  vmHwmKiB: number;
}

export interface IdentityResults {
  settings: { runs: number; durationS: number; warmupS: number; connections: number; cache: string };
  me: Measured[];
  projectRead: Measured[];
  recordRead: Measured[];
  recordCreate: Measured[];
  /** The trivial Node + Postgres one-row read (bare-server.ts `/row`), the records read's yardstick. */
  nodePgRow: Measured[];
  peer?: { describe: string; getOne: Measured[]; create: Measured[] };
  bare: Measured[];
  login: Measured[];
  loginConnections: number;
  burst: {
    size: number;
    wallMs: number;
    statuses: Record<string, number>;
    latenciesMs: number[];
    before: MemorySample;
    after: MemorySample;
    /** Whether the peak (VmHWM) could be reset right before the burst (clear_refs 5). */
    hwmReset: boolean;
    /** Highest VmRSS seen by polling every 20 ms during the burst. */
    polledPeakRssKiB: number;
  };
}

const loginConnections = 8;
const burstSize = 200;

function memory(pid: number): MemorySample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { vmRssKiB: kib('VmRSS'), vmHwmKiB: kib('VmHWM') };
}

/** One POST with a JSON body; resolves to the status (0 on a network error) and the time it took. */
function postJson(url: string, body: unknown): Promise<{ status: number; ms: number; body: string }> {
  const target = new URL(url);
  if (target.hostname !== '127.0.0.1') throw new Error('loopback targets only');
  const payload = JSON.stringify(body);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = httpsRequest(
      target,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: 60_000,
        rejectUnauthorized: false,
        servername: 'localhost',
        // One connection per request: the burst really is 200 requests in flight at once.
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, ms: performance.now() - t0, body: '' }));
    req.end(payload);
  });
}

/** The bare Fastify ceiling and the trivial Node + Postgres row read, over the server's certificate. */
async function startBare(
  ctx: IdentityContext,
  certDir: string,
): Promise<{ origin: string; nodePid: number }> {
  const bare = await startBareServer({
    certDir,
    databaseUrl: ctx.databaseUrl,
    logFile: join(ctx.outDir, 'bare-server.log'),
  });
  ctx.cleanups.push(() => bare.stop());
  return bare;
}

export async function runIdentityScenarios(ctx: IdentityContext): Promise<IdentityResults> {
  const { core, log } = ctx;
  log('identity: tenant, owner, project and read API key through the product');
  const tenant = await benchTenant(core, 'bench-identity');
  const { secret: apiKey } = await core.identity.createApiKey(tenant.principal, {
    name: 'bench',
    access: 'read',
  });
  const { secret: writeKey } = await core.identity.createApiKey(tenant.principal, {
    name: 'bench writer',
    access: 'write',
  });
  const { record } = await core.records.create(tenant.principal, tenant.projectId, {
    collection: 'contacts',
    data: { name: 'Ada Lovelace', email: 'ada@example.test', tags: ['vip', 'math'], visits: 12 },
  });

  const dataDir = join(ctx.tmp, 'server-identity');
  const server: StrongroomServer = await startStrongroom({
    packageDir: ctx.packageDir,
    databaseUrl: ctx.databaseUrl,
    cacheUrl: ctx.cacheUrl,
    masterKeyHex: ctx.masterKeyHex,
    dataDir,
    logFile: join(ctx.outDir, 'server-identity.log'),
  });
  ctx.cleanups.push(() => server.stop());
  log(`identity: server ${server.origin} (pid ${server.nodePid})`);
  const bare = await startBare(ctx, join(dataDir, 'tls'));
  log(`identity: bare Fastify ${bare.origin} (pid ${bare.nodePid})`);
  const cpu: CpuTarget = { serverPid: server.nodePid, database: ctx.databaseName };
  const bareCpu: CpuTarget = { serverPid: bare.nodePid, database: ctx.databaseName };

  const meSpec = {
    label: 'GET /api/v1/me (session)',
    origin: server.origin,
    path: '/api/v1/me',
    headers: { authorization: `Bearer ${tenant.sessionToken}` },
    connections: ctx.connections,
  };
  const projectSpec = {
    label: 'GET /api/v1/projects/{id} (read API key)',
    origin: server.origin,
    path: `/api/v1/projects/${tenant.projectId}`,
    headers: { authorization: `Bearer ${apiKey}` },
    connections: ctx.connections,
  };
  const recordReadSpec = {
    label: 'GET /api/v1/projects/{id}/records/{rid} (read API key)',
    origin: server.origin,
    path: `/api/v1/projects/${tenant.projectId}/records/${record.id}`,
    headers: { authorization: `Bearer ${apiKey}` },
    connections: ctx.connections,
  };
  const recordCreateSpec = {
    label: 'POST /api/v1/projects/{id}/records (write API key)',
    origin: server.origin,
    path: `/api/v1/projects/${tenant.projectId}/records`,
    method: 'POST' as const,
    headers: { authorization: `Bearer ${writeKey}` },
    body: { collection: 'contacts', data: { name: 'Grace Hopper', email: 'grace@example.test', visits: 1 } },
    connections: ctx.connections,
  };
  const rowSpec = {
    label: 'trivial Node + Postgres GET /row',
    origin: bare.origin,
    path: '/row',
    connections: ctx.connections,
  };
  const bareSpec = {
    label: 'bare Fastify GET /bare',
    origin: bare.origin,
    path: '/bare',
    connections: ctx.connections,
  };
  const loginBody = { tenant: 'bench-identity', email: tenant.ownerEmail, password: benchPassword };
  const loginSpec = {
    label: `POST /api/v1/auth/login (c=${loginConnections})`,
    origin: server.origin,
    path: '/api/v1/auth/login',
    method: 'POST' as const,
    body: loginBody,
    connections: loginConnections,
  };

  for (const [spec, token] of [
    [meSpec, tenant.sessionToken],
    [projectSpec, apiKey],
    [recordReadSpec, apiKey],
  ] as const) {
    const res = await fetchOnce(`${spec.origin}${spec.path}`, { authorization: `Bearer ${token}` });
    if (res.status !== 200) throw new Error(`${spec.label} answered ${res.status}: ${res.body}`);
  }
  for (const path of ['/bare', '/row']) {
    const check = await fetchOnce(`${bare.origin}${path}`);
    if (check.status !== 200) throw new Error(`bare ${path} answered ${check.status}`);
  }
  const loginCheck = await postJson(`${server.origin}/api/v1/auth/login`, loginBody);
  if (loginCheck.status !== 200) throw new Error(`login answered ${loginCheck.status}: ${loginCheck.body}`);

  const timing = { durationS: ctx.durationS, warmupS: ctx.warmupS };
  log('identity: priming the fresh servers (not measured)');
  await ctx.load(cpu, { ...meSpec, label: 'priming /me' }, { durationS: 3, warmupS: 0 });
  await ctx.load(cpu, { ...projectSpec, label: 'priming project read' }, { durationS: 3, warmupS: 0 });
  await ctx.load(bareCpu, { ...bareSpec, label: 'priming bare' }, { durationS: 3, warmupS: 0 });

  const results: Omit<IdentityResults, 'burst'> = {
    settings: {
      runs: ctx.runs,
      durationS: ctx.durationS,
      warmupS: ctx.warmupS,
      connections: ctx.connections,
      cache: ctx.cacheUrl,
    },
    me: [],
    projectRead: [],
    recordRead: [],
    recordCreate: [],
    nodePgRow: [],
    ...(ctx.peer ? { peer: { describe: ctx.peer.describe, getOne: [], create: [] } } : {}),
    bare: [],
    login: [],
    loginConnections,
  };
  const steps: Array<() => Promise<void>> = [
    async () => {
      results.me.push(await ctx.load(cpu, meSpec, timing));
    },
    async () => {
      results.projectRead.push(await ctx.load(cpu, projectSpec, timing));
    },
    async () => {
      results.recordRead.push(await ctx.load(cpu, recordReadSpec, timing));
    },
    async () => {
      results.recordCreate.push(await ctx.load(cpu, recordCreateSpec, timing));
    },
    async () => {
      results.bare.push(await ctx.load(bareCpu, bareSpec, timing));
    },
    async () => {
      results.nodePgRow.push(await ctx.load(bareCpu, rowSpec, timing));
    },
  ];
  const { peer } = ctx;
  if (peer && results.peer) {
    const peerResults = results.peer;
    steps.push(
      async () => {
        peerResults.getOne.push(await peer.getOne());
      },
      async () => {
        peerResults.create.push(await peer.create());
      },
    );
  }
  log(
    `identity: /me, project read, record read and create, bare Fastify, Node + Postgres row${peer ? ', peer get-one and create' : ''} (interleaved, order rotated)`,
  );
  for (let run = 0; run < ctx.runs; run++) {
    for (let i = 0; i < steps.length; i++) await steps[(run + i) % steps.length]!();
  }
  log(`identity: login throughput at c=${loginConnections}`);
  for (let run = 0; run < ctx.runs; run++) results.login.push(await ctx.load(cpu, loginSpec, timing));

  log(`identity: ${burstSize} concurrent logins`);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  let hwmReset = false;
  try {
    // "5" resets the peak resident set size (VmHWM) to the current one (Linux ≥ 4.0, own processes).
    writeFileSync(`/proc/${server.nodePid}/clear_refs`, '5');
    hwmReset = true;
  } catch {
    hwmReset = false;
  }
  const before = memory(server.nodePid);
  let polledPeakRssKiB = before.vmRssKiB;
  const poll = setInterval(() => {
    polledPeakRssKiB = Math.max(polledPeakRssKiB, memory(server.nodePid).vmRssKiB);
  }, 20);
  const t0 = performance.now();
  const answers = await Promise.all(
    Array.from({ length: burstSize }, () => postJson(`${server.origin}/api/v1/auth/login`, loginBody)),
  );
  const wallMs = performance.now() - t0;
  clearInterval(poll);
  const after = memory(server.nodePid);
  const statuses: Record<string, number> = {};
  for (const a of answers) {
    let key = String(a.status);
    if (a.status !== 200) {
      try {
        const parsed = JSON.parse(a.body) as { error?: { code?: string }; code?: string };
        key = `${key} ${parsed.error?.code ?? parsed.code ?? ''}`.trimEnd();
      } catch {
        // Not JSON (or no answer at all): the status alone.
      }
    }
    statuses[key] = (statuses[key] ?? 0) + 1;
  }
  log(
    `identity: burst ${JSON.stringify(statuses)} in ${Math.round(wallMs)} ms; VmHWM ${before.vmHwmKiB} → ${after.vmHwmKiB} KiB`,
  );
  return {
    ...results,
    burst: {
      size: burstSize,
      wallMs,
      statuses,
      latenciesMs: answers.map((a) => a.ms),
      before,
      after,
      hwmReset,
      polledPeakRssKiB,
    },
  };
}

const medianOf = (runs: readonly Measured[], key: keyof Measured): number =>
  median(runs.map((r) => r[key]).filter((v): v is number => typeof v === 'number'));
const perRun = (runs: readonly Measured[]) => runs.map((r) => fmt(r.rps_avg)).join(' / ');
const failures = (runs: readonly Measured[]) =>
  runs.reduce((n, r) => n + r.non2xx + r.errors + r.timeouts, 0);
/** What the measured split of CPU per request says about where the time goes. */
function dbShare(runs: readonly Measured[], bare: readonly Measured[]): string {
  const server = medianOf(runs, 'server_cpu_ms_per_req');
  const db = medianOf(runs, 'db_cpu_ms_per_req');
  const bareServer = medianOf(bare, 'server_cpu_ms_per_req');
  return (
    `${fmt(server + db, 3)} CPU-ms a \`/me\` costs, Postgres backends spend ${fmt(db, 3)} (${((db / (server + db)) * 100).toFixed(0)} %), ` +
    `and the server ${fmt(server, 3)} against ${fmt(bareServer, 3)} for the bare route over the same TLS: ` +
    'the difference is the per-request work of the product (the authentication hook and its cache lookup, security headers, response validation and serialisation); it was not profiled function by function here.'
  );
}
const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

export function renderIdentity(
  r: IdentityResults,
  meta: {
    startedAt: string;
    finishedAt: string;
    machine: Record<string, string>;
    postgres: Record<string, string>;
    /** 1-minute load average at the start and end of the identity runs (other work on the machine). */
    loadavg?: string;
  },
): string {
  const s = r.settings;
  const meRps = medianOf(r.me, 'rps_avg');
  const projectRps = medianOf(r.projectRead, 'rps_avg');
  const bareRps = medianOf(r.bare, 'rps_avg');
  const loginRps = medianOf(r.login, 'rps_avg');
  const recordReadRps = medianOf(r.recordRead ?? [], 'rps_avg');
  const recordCreateRps = medianOf(r.recordCreate ?? [], 'rps_avg');
  const rowRps = medianOf(r.nodePgRow ?? [], 'rps_avg');
  const peerGetRps = r.peer ? medianOf(r.peer.getOne, 'rps_avg') : undefined;
  const peerCreateRps = r.peer ? medianOf(r.peer.create, 'rps_avg') : undefined;
  const recordReadP99 = medianOf(r.recordRead ?? [], 'p99_ms');
  const cpuPerReq = (runs: readonly Measured[]) =>
    medianOf(runs, 'server_cpu_ms_per_req') + medianOf(runs, 'db_cpu_ms_per_req');
  const verdict = (ok: boolean) => (ok ? '**PASS**' : '**FAIL**');
  const row = (name: string, runs: readonly Measured[]) =>
    `| ${name} | ${runs[0]?.connections ?? ''} | ${perRun(runs)} | **${fmt(medianOf(runs, 'rps_avg'))}** | ${fmt(
      medianOf(runs, 'p50_ms'),
    )} | ${fmt(medianOf(runs, 'p99_ms'))} | ${fmt(medianOf(runs, 'server_cpu_ms_per_req'), 3)} | ${fmt(
      medianOf(runs, 'db_cpu_ms_per_req'),
      3,
    )} | ${fmt(medianOf(runs, 'server_cpu_pct'), 0)} % | ${fmt(medianOf(runs, 'db_cpu_pct'), 0)} % | ${fmt(
      medianOf(runs, 'client_cpu_pct'),
      0,
    )} % | ${failures(runs)} |`;
  const burst = r.burst;
  const sortedBurst = [...burst.latenciesMs].sort((a, b) => a - b);
  const statusCells = Object.entries(burst.statuses)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  const meCpu = cpuPerReq(r.me);
  const projectCpu = cpuPerReq(r.projectRead);
  const bareCpu = cpuPerReq(r.bare);
  const lines = [
    '# Bench results: identity',
    '',
    `Latest run of the identity scenarios of \`npm run bench\` (\`BENCH_SCENARIOS=identity npm run bench\` runs only these; overwritten by each run). Linked from \`bench/RESULTS.md\`. On a noisy 2-core machine absolute numbers move from run to run; the bare-Fastify ceiling is measured in the same run, interleaved, for that reason.`,
    '',
    '| | |',
    '|---|---|',
    `| date | ${meta.startedAt} → ${meta.finishedAt} |`,
    `| CPU | ${meta.machine.cpu}, ${meta.machine.cores} cores |`,
    `| memory | ${meta.machine.memory} |`,
    `| Node (bench, load generator, servers) | ${meta.machine.node} |`,
    `| Postgres | ${meta.postgres.version} (${Object.entries(meta.postgres)
      .filter(([k]) => k !== 'version')
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}) |`,
    `| machine load | 1-minute load average ${meta.loadavg ?? 'n/a'} (start → end of the identity runs; 2 cores, other work was running) |`,
    `| load | autocannon in its own process, TLS, pipelining 1, ${s.warmupS} s warm-up + ${s.durationS} s measured per run, ${s.runs} runs each, median reported |`,
    `| server | \`strongroom serve\` (TLS, self-signed localhost certificate, \`STRONGROOM_CACHE=${s.cache}\` (the shared cache several nodes would use; it holds the principal cache), default pool of 10) on its own bench database, one tenant set up through the product: owner via setup token, one project, one \`read\` API key of the owner |`,
    '| ceiling | a bare Fastify 5 server (`bench/bare-server.ts`: `GET /bare` → `{"ok":true}`, no plugins) over the same certificate, in its own process; in the same process, `GET /row`: the trivial Node + Postgres one-row read (one prepared primary-key lookup through a pg pool of 10, no authentication) |',
    ...(r.peer ? [`| peer | ${r.peer.describe} |`] : ['| peer | not run (`BENCH_PEER=0`) |']),
    '',
    '## Targets',
    '',
    '| target | measured | bare Fastify ratio | result |',
    '|---|---|---:|---|',
    `| \`GET /api/v1/me\` with a session token ≥ ${fmt(identityTargets.meRps)} req/s (c=${s.connections}) | ${fmt(meRps)} req/s | ${(meRps / bareRps).toFixed(3)} of ${fmt(bareRps)} | ${verdict(meRps >= identityTargets.meRps)} |`,
    `| \`GET /api/v1/projects/{id}\` with a read API key ≥ ${fmt(identityTargets.projectReadRps)} req/s (c=${s.connections}) | ${fmt(projectRps)} req/s | ${(projectRps / bareRps).toFixed(3)} of ${fmt(bareRps)} | ${verdict(projectRps >= identityTargets.projectReadRps)} |`,
    `| records (issue 4): \`GET\` one record by id with a read API key ≥ ${fmt(recordTargets.readRps)} req/s (c=${s.connections}) | ${fmt(recordReadRps)} req/s, p99 ${fmt(medianOf(r.recordRead ?? [], 'p99_ms'))} ms | ${(recordReadRps / bareRps).toFixed(3)} of ${fmt(bareRps)} | ${verdict(recordReadRps >= recordTargets.readRps)} |`,
    `| records (issue 4): the same read ≥ 40 % of the trivial Node + Postgres one-row read, p99 ≤ 50 ms | ${rowRps > 0 ? `${((recordReadRps / rowRps) * 100).toFixed(0)} % of ${fmt(rowRps)} req/s` : 'n/a'}, p99 ${fmt(recordReadP99)} ms | — | ${verdict(rowRps > 0 && recordReadRps >= 0.4 * rowRps && recordReadP99 <= 50)} |`,
    ...(r.peer && peerGetRps !== undefined && peerCreateRps !== undefined
      ? [
          `| records vs the peer (reported): single-item GET | ours ${fmt(recordReadRps)} (TLS) vs peer ${fmt(peerGetRps)} req/s (plain HTTP) = ${(recordReadRps / peerGetRps).toFixed(1)}× | — | — |`,
          `| records vs the peer (reported): create | ours ${fmt(recordCreateRps)} (TLS) vs peer ${fmt(peerCreateRps)} req/s (plain HTTP) = ${(recordCreateRps / peerCreateRps).toFixed(1)}× | — | — |`,
        ]
      : []),
    `| records (issue 4): \`POST\` create a record with a write API key ≥ ${fmt(recordTargets.createRps)} req/s (c=${s.connections}) | ${fmt(recordCreateRps)} req/s, p99 ${fmt(medianOf(r.recordCreate ?? [], 'p99_ms'))} ms | ${(recordCreateRps / bareRps).toFixed(3)} of ${fmt(bareRps)} | ${verdict(recordCreateRps >= recordTargets.createRps)} |`,
    `| login throughput (reported, no target), c=${r.loginConnections} | ${fmt(loginRps)} logins/s, p99 ${fmt(medianOf(r.login, 'p99_ms'))} ms | — | — |`,
    `| peak server RSS during ${burst.size} concurrent logins (reported, no target) | VmHWM ${mib(burst.after.vmHwmKiB)} (${mib(burst.before.vmRssKiB)} before the burst) | — | — |`,
    '',
    `Non-2xx answers and errors in the measured load runs: ${failures([...r.me, ...r.projectRead, ...(r.recordRead ?? []), ...(r.recordCreate ?? []), ...(r.nodePgRow ?? []), ...r.bare, ...r.login, ...(r.peer ? [...r.peer.getOne, ...r.peer.create] : [])])}.`,
    '',
    '## Throughput',
    '',
    "Server CPU is the server process's user + system time during the measured run divided by requests; Postgres CPU the same for the backends connected to the bench database. CPU % is of one core (the machine has 2: 200 % in all, shared by load generator, server and Postgres).",
    '',
    '| scenario | connections | req/s per run | median req/s | p50 ms | p99 ms | server CPU ms/req | Postgres CPU ms/req | server CPU | Postgres CPU | load generator CPU | non-2xx + errors |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('bare Fastify `GET /bare` (ceiling)', r.bare),
    row('trivial Node + Postgres `GET /row` (one prepared primary-key read, no auth)', r.nodePgRow ?? []),
    row('`GET /api/v1/me` (session `srt_…`)', r.me),
    row('`GET /api/v1/projects/{id}` (API key `srk_…`, read)', r.projectRead),
    row('`GET /api/v1/projects/{id}/records/{rid}` (API key, read)', r.recordRead ?? []),
    row(
      '`POST /api/v1/projects/{id}/records` (API key, write; a new record per request)',
      r.recordCreate ?? [],
    ),
    row('`POST /api/v1/auth/login` (argon2id m=19456, t=2, p=1)', r.login),
    ...(r.peer
      ? [
          row('peer: `GET /items/records/{id}` (static token, plain HTTP)', r.peer.getOne),
          row('peer: `POST /items/records` (static token, plain HTTP)', r.peer.create),
        ]
      : []),
    '',
    `## ${burst.size} concurrent logins`,
    '',
    `One burst of ${burst.size} parallel \`POST /api/v1/auth/login\` with the correct password, one TLS connection each, sent from the bench process after the throughput runs. The server hashes at most 4 at once (bounded argon2 semaphore); the rest queue and answer 429 \`login_busy\` after waiting more than 5 s for a slot.`,
    '',
    '| | |',
    '|---|---|',
    `| statuses | ${statusCells} |`,
    `| wall time of the burst | ${fmt(burst.wallMs / 1000)} s |`,
    `| latency p50 / p99 / max | ${fmt(sortedBurst[Math.floor(sortedBurst.length / 2)] ?? Number.NaN)} / ${fmt(
      sortedBurst[Math.min(sortedBurst.length - 1, Math.ceil(sortedBurst.length * 0.99) - 1)] ?? Number.NaN,
    )} / ${fmt(sortedBurst.at(-1) ?? Number.NaN)} ms |`,
    `| server VmRSS / VmHWM before | ${mib(burst.before.vmRssKiB)} / ${mib(burst.before.vmHwmKiB)} ${burst.hwmReset ? '(peak reset to current just before the burst via `/proc/<pid>/clear_refs`)' : '(peak could not be reset: includes the earlier runs)'} |`,
    `| server VmRSS / VmHWM after | ${mib(burst.after.vmRssKiB)} / ${mib(burst.after.vmHwmKiB)} |`,
    `| peak VmRSS polled every 20 ms during the burst | ${mib(burst.polledPeakRssKiB)} |`,
    '',
    '## Where the time goes',
    '',
    `Per request, \`/me\` costs ${fmt(meCpu, 3)} CPU-ms (server ${fmt(medianOf(r.me, 'server_cpu_ms_per_req'), 3)} + Postgres ${fmt(
      medianOf(r.me, 'db_cpu_ms_per_req'),
      3,
    )}) and the project read ${fmt(projectCpu, 3)} (server ${fmt(medianOf(r.projectRead, 'server_cpu_ms_per_req'), 3)} + Postgres ${fmt(
      medianOf(r.projectRead, 'db_cpu_ms_per_req'),
      3,
    )}), against ${fmt(bareCpu, 3)} for the bare route. With both cores to server, Postgres and load generator alone, that caps \`/me\` at roughly ${fmt(
      (2000 - medianOf(r.me, 'client_cpu_pct') * 10) / meCpu,
    )} req/s and the project read at roughly ${fmt(
      (2000 - medianOf(r.projectRead, 'client_cpu_pct') * 10) / projectCpu,
    )}; other work on the machine (1-minute load average ${meta.loadavg ?? 'n/a'} over the identity runs) takes the rest, which is why measured req/s sits below those estimates and moves between runs (so does the bare route's).`,
    '',
    `\`/me\` does no database work: the principal behind the token comes from the principal cache (each node's memory for up to 1 s, then the shared cache, Redis here, for up to 15 s; invalidated before every change that could alter it, see docs/security.md). Of the ${dbShare(r.me, r.bare)}`,
    '',
    `The project read adds one statement on the tenant read pool (\`src/db/tenant-read-pool.ts\`): read-only connections that keep the tenant's search path and role between uses, so a read is one round trip (the project and the caller's role in it, one query). Reaching ${fmt(identityTargets.projectReadRps)} req/s would need server + Postgres under about ${fmt(
      (2000 - medianOf(r.projectRead, 'client_cpu_pct') * 10) / identityTargets.projectReadRps,
      2,
    )} CPU-ms per request. What is left, from a CPU profile of sequential reads outside the server: building and compiling the query in Kysely (with the schema-qualifying plugin) is about a quarter of the process's busy time, and Postgres parses and plans every statement afresh (no prepared statements). Not taken yet: reusing compiled query text (only the parameters change from one read to the next) and named prepared statements on the read pool's connections.`,
    '',
  ];
  return lines.join('\n');
}
