import { cpus, totalmem } from 'node:os';
import type { FleetSummary } from '../src/modules/tenants/fleet-migration.service.ts';
import type { LoadResult } from './load.ts';
import type { StatementShare } from './sql-timing.ts';
import { fmt, median, summarize } from './stats.ts';

/** A measured run with the CPU our server (or the peer) and its Postgres backends spent on it. */
export interface Measured extends LoadResult {
  server_cpu_ms_per_req?: number;
  db_cpu_ms_per_req?: number;
  server_cpu_pct?: number;
  db_cpu_pct?: number;
  client_cpu_pct?: number | undefined;
}

export interface HttpPhase {
  healthz: Measured[];
  read: Measured[];
  /** At 1,000 tenants: the read of one hot tenant, interleaved with the random-tenant read. */
  hot?: Measured[];
}

export interface BenchResults {
  startedAt: string;
  finishedAt: string;
  machine: Record<string, string>;
  postgres: Record<string, string>;
  settings: {
    tenants: number;
    durationS: number;
    warmupS: number;
    runs: number;
    connections: number;
    fleet: { batchSize: number; concurrency: number; canarySize: number };
  };
  provisioning: { durationsMs: number[]; wallMs: number; statements: StatementShare[] };
  fleet: { summary: FleetSummary; wallMs: number; verifiedColumns: number; statements: StatementShare[] };
  http: { one: HttpPhase; many: HttpPhase };
  peer:
    | {
        version: string;
        nodeVersion: string;
        bootstrapMs: number;
        seedMs: number;
        seedCount: number;
        runs: Record<string, Measured[]>;
      }
    | undefined;
}

/** Where RESULTS.md points to the reports other scenarios and benches write (each overwritten by its own run). */
export const otherReports = [
  'Other scenarios and benches write their own reports, each overwritten by its own run:',
  '- identity and records (`BENCH_SCENARIOS=identity`): `/me`, project read with an API key, record read and create beside the trivial Node + Postgres one-row read and the peer, bare-Fastify ceiling, login throughput and memory: [RESULTS-identity.md](RESULTS-identity.md); the request-path changes of 2026-11-23, before and after, back to back: [RESULTS-identity-ab.md](RESULTS-identity-ab.md)',
  "- attachments (`BENCH_SCENARIOS=attachments`): 64 MiB upload and download against raw AES-256-GCM and bare HTTPS yardsticks, 16 parallel 256 MiB uploads' peak memory, folder and S3 stores: [RESULTS-attachments.md](RESULTS-attachments.md)",
  '- noisy neighbour (`BENCH_SCENARIOS=noisy`): tenant A at 10× its rate limit beside tenant B: [RESULTS-noisy.md](RESULTS-noisy.md)',
  '- audit (`node bench/audit.ts`): single-record GET with audit on vs off, `audit verify` over 1,000,000 entries: [RESULTS-audit.md](RESULTS-audit.md)',
  '- backups (`node bench/backups.ts`): journal cost on creates, snapshot vs `pg_dump -Fc`, restore with journal replay, RPO: [RESULTS-backups.md](RESULTS-backups.md)',
].join('\n');

/** Targets from the issue. */
export const targets = {
  provisionP50Ms: 50,
  /** The 1,000-tenant read may be at most this much slower than the 1-tenant read. */
  readRatioMin: 0.9,
};

export function machineFacts(): Record<string, string> {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: String(list.length),
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    node: process.version,
  };
}

const medianRps = (runs: readonly LoadResult[]) => median(runs.map((r) => r.rps_avg));
const medianCpu = (
  runs: readonly Measured[],
  key: 'server_cpu_ms_per_req' | 'db_cpu_ms_per_req' | 'client_cpu_pct',
) => median(runs.map((r) => r[key]).filter((v): v is number => typeof v === 'number'));
const medianOf = (runs: readonly LoadResult[], key: 'p50_ms' | 'p99_ms') => median(runs.map((r) => r[key]));
const failures = (runs: readonly LoadResult[]) =>
  runs.reduce((n, r) => n + r.non2xx + r.errors + r.timeouts, 0);
const pass = (ok: boolean) => (ok ? '**PASS**' : '**FAIL**');
const pct = (ratio: number) => `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(1)} %`;

function statementTable(statements: StatementShare[], perUnit: number, unit: string, limit = 10): string[] {
  const total = statements.reduce((a, s) => a + s.totalMs, 0);
  const lines = [`| statement (shape) | per ${unit} | ms per ${unit} | share |`, '|---|---:|---:|---:|'];
  for (const s of statements.slice(0, limit)) {
    lines.push(
      `| \`${s.shape.replaceAll('|', '\\|')}\` | ${fmt(s.count / perUnit)} | ${fmt(s.totalMs / perUnit)} | ${((s.totalMs / total) * 100).toFixed(1)} % |`,
    );
  }
  const rest = statements.slice(limit);
  if (rest.length > 0) {
    const restMs = rest.reduce((a, s) => a + s.totalMs, 0);
    const restCount = rest.reduce((a, s) => a + s.count, 0);
    lines.push(
      `| ${rest.length} other shapes | ${fmt(restCount / perUnit)} | ${fmt(restMs / perUnit)} | ${((restMs / total) * 100).toFixed(1)} % |`,
    );
  }
  lines.push(
    `| **all statements** | ${fmt(statements.reduce((a, s) => a + s.count, 0) / perUnit)} | ${fmt(total / perUnit)} | 100 % |`,
  );
  return lines;
}

function runsCell(runs: readonly LoadResult[]): string {
  return runs.map((r) => Math.round(r.rps_avg).toLocaleString('en-US')).join(' / ');
}

export function renderResults(r: BenchResults): string {
  const n = r.settings.tenants;
  const prov = summarize(r.provisioning.durationsMs);
  const fleetS = r.fleet.wallMs / 1000;
  const fleetRate = r.fleet.summary.migrated / fleetS;
  const h1 = medianRps(r.http.one.healthz);
  const hN = medianRps(r.http.many.healthz);
  const r1 = medianRps(r.http.one.read);
  const rN = medianRps(r.http.many.read);
  const readRatio = rN / r1;
  const healthRatio = hN / h1;
  const provOk = prov.p50Ms <= targets.provisionP50Ms;
  const readOk = readRatio >= targets.readRatioMin;
  const httpFailures = [r.http.one, r.http.many].reduce(
    (a, p) => a + failures(p.healthz) + failures(p.read),
    0,
  );

  const out: string[] = [];
  out.push('# Bench results');
  out.push('');
  out.push(
    `Latest run of \`npm run bench\` (overwritten by each run; raw numbers in \`bench/out/results.json\`, not committed). ` +
      'On a noisy 2-core machine absolute numbers move from run to run; compare the ratios within one run.',
  );
  out.push('');
  out.push(otherReports);
  out.push('');
  out.push('| | |');
  out.push('|---|---|');
  out.push(`| date | ${r.startedAt} → ${r.finishedAt} |`);
  out.push(`| CPU | ${r.machine.cpu}, ${r.machine.cores} cores |`);
  out.push(`| memory | ${r.machine.memory} |`);
  out.push(`| Node (bench, load generator, server) | ${r.machine.node} |`);
  out.push(
    `| Postgres | ${r.postgres.version} (synchronous_commit=${r.postgres.synchronous_commit}, fsync=${r.postgres.fsync}, shared_buffers=${r.postgres.shared_buffers}) |`,
  );
  out.push(
    `| load | autocannon, ${r.settings.connections} connections, pipelining 1, ${r.settings.warmupS} s warm-up + ${r.settings.durationS} s measured per run, ${r.settings.runs} runs each, median reported |`,
  );
  if (r.peer)
    out.push(`| peer | Directus ${r.peer.version} on Node ${r.peer.nodeVersion}, same Postgres server |`);
  out.push('');

  out.push('## Targets');
  out.push('');
  out.push('| target | measured | result |');
  out.push('|---|---|---|');
  out.push(
    `| provisioning p50 ≤ ${targets.provisionP50Ms} ms per tenant | p50 ${fmt(prov.p50Ms)} ms (p99 ${fmt(prov.p99Ms)} ms) | ${pass(provOk)} |`,
  );
  out.push(
    `| tenant-scoped read at ${n} tenants within 10 % of 1 tenant (req/s) | ${fmt(rN)} vs ${fmt(r1)} req/s = ${readRatio.toFixed(3)} (${pct(readRatio)}) | ${pass(readOk)} |`,
  );
  out.push(
    `| (control) /healthz at ${n} vs 1 tenant — does not touch tenants, so it shows the machine's drift between the two phases | ${fmt(hN)} vs ${fmt(h1)} req/s = ${healthRatio.toFixed(3)} (${pct(healthRatio)}) | — |`,
  );
  const readCost = (runs: Measured[]) =>
    medianCpu(runs, 'server_cpu_ms_per_req') + medianCpu(runs, 'db_cpu_ms_per_req');
  const costRatio = readCost(r.http.many.read) / readCost(r.http.one.read);
  out.push(
    `| (supporting, steadier under noise) server + Postgres CPU per tenant read at ${n} vs 1 tenant | ${fmt(readCost(r.http.many.read), 3)} vs ${fmt(readCost(r.http.one.read), 3)} ms = ${costRatio.toFixed(3)} (${pct(costRatio)}) | — |`,
  );
  out.push(`| fleet migration throughput (reported, no target) | ${fmt(fleetRate)} tenants/s | — |`);
  out.push('');
  out.push(
    `The 10 % bound is read as "no more than 10 % slower" (ratio ≥ ${targets.readRatioMin}); a faster ${n}-tenant figure is noise, not a regression.` +
      (httpFailures > 0
        ? ` **${httpFailures} non-2xx/errors/timeouts were counted in the HTTP runs: see the tables.**`
        : ' Every HTTP response in every run was 2xx.'),
  );
  out.push('');

  out.push(`## Provisioning ${n} tenants`);
  out.push('');
  out.push(
    `\`core.tenants.create\` called in-process, one tenant after another (what \`strongroom tenant create\` does, minus process start): control row, schema, role, tenant migrations, grants, wrapped data key and setup token in one transaction.`,
  );
  out.push('');
  out.push(
    '| tenants | p50 ms | p90 ms | p99 ms | max ms | mean ms | sum of creates | wall time | tenants/s |',
  );
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  out.push(
    `| ${prov.n} | ${fmt(prov.p50Ms)} | ${fmt(prov.p90Ms)} | ${fmt(prov.p99Ms)} | ${fmt(prov.maxMs)} | ${fmt(prov.meanMs)} | ${fmt(prov.totalMs / 1000)} s | ${fmt(r.provisioning.wallMs / 1000)} s | ${fmt(prov.n / (r.provisioning.wallMs / 1000))} |`,
  );
  out.push('');
  out.push('By creation order (does a tenant cost more when many exist?):');
  out.push('');
  const bucket = Math.max(1, Math.ceil(n / 10));
  out.push('| tenants | p50 ms | p99 ms |');
  out.push('|---|---:|---:|');
  for (let i = 0; i < r.provisioning.durationsMs.length; i += bucket) {
    const s = summarize(r.provisioning.durationsMs.slice(i, i + bucket));
    out.push(`| ${i + 1}–${Math.min(i + bucket, n)} | ${fmt(s.p50Ms)} | ${fmt(s.p99Ms)} |`);
  }
  out.push('');
  out.push('Where the time goes (client-side time per statement, round trip included, all tenants):');
  out.push('');
  out.push(...statementTable(r.provisioning.statements, n, 'tenant'));
  out.push('');

  const fs = r.fleet.summary;
  out.push(`## Fleet migration over ${n} tenants`);
  out.push('');
  out.push(
    `A second core built with \`tenantMigrations: [...tenantMigrations, addSettingsBenchNote]\` (one nullable column on \`settings\`) runs \`fleet.run({batchSize: ${r.settings.fleet.batchSize}, concurrency: ${r.settings.fleet.concurrency}, canarySize: ${r.settings.fleet.canarySize}})\`.`,
  );
  out.push('');
  out.push('| status | tenants | migrated | failed | wall time | tenants/s | column present afterwards |');
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  out.push(
    `| ${fs.status} | ${fs.total} | ${fs.migrated} | ${fs.failed} | ${fmt(fleetS)} s | **${fmt(fleetRate)}** | ${r.fleet.verifiedColumns} schemas |`,
  );
  out.push('');
  out.push(
    `Where the time goes (client-side, summed over the ${r.settings.fleet.concurrency} concurrent workers, so it exceeds wall time; run bookkeeping included):`,
  );
  out.push('');
  out.push(...statementTable(r.fleet.statements, Math.max(1, fs.migrated), 'tenant', 8));
  out.push('');

  out.push(`## HTTP over TLS at 1 and at ${n} tenants`);
  out.push('');
  out.push(
    `The real server (\`node bin/strongroom.js serve\`, Postgres, in-memory cache, self-signed TLS) in its own process; autocannon in a third. ` +
      `\`GET /healthz\` and the tenant-scoped read \`GET /api/v1/ops/tenants/{id}/schema\` (staff key lookup, tenant lookup in \`control\`, then \`withTenant\`: a read-only transaction with \`SET LOCAL ROLE\` reading the tenant's \`_migrations\`). ` +
      `The 1-tenant runs happen while only one tenant exists; the ${n}-tenant runs pick a random tenant per request, on the same server process. ` +
      `At ${n} tenants the read of the first tenant alone ("one hot tenant") is interleaved with the others. Run order rotates; the median of ${r.settings.runs} runs is reported. ` +
      'CPU columns: CPU time of the server process and of its Postgres backends during the measured run, divided by the requests served (medians), from /proc; client % is the load generator’s share of one core.',
  );
  out.push('');
  out.push(
    '| endpoint | tenants | req/s per run | median req/s | p50 ms | p99 ms | server CPU ms/req | Postgres CPU ms/req | client CPU % | non-2xx + errors |',
  );
  out.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  const httpRow = (name: string, tenants: string, runs: Measured[]) =>
    out.push(
      `| ${name} | ${tenants} | ${runsCell(runs)} | **${fmt(medianRps(runs))}** | ${fmt(medianOf(runs, 'p50_ms'))} | ${fmt(medianOf(runs, 'p99_ms'))} | ${fmt(medianCpu(runs, 'server_cpu_ms_per_req'), 3)} | ${fmt(medianCpu(runs, 'db_cpu_ms_per_req'), 3)} | ${fmt(medianCpu(runs, 'client_cpu_pct'), 0)} | ${failures(runs)} |`,
    );
  httpRow('`GET /healthz`', '1', r.http.one.healthz);
  httpRow('`GET /healthz`', String(n), r.http.many.healthz);
  httpRow('tenant-scoped read', '1', r.http.one.read);
  httpRow('tenant-scoped read, random tenant', String(n), r.http.many.read);
  if (r.http.many.hot) httpRow('tenant-scoped read, one hot tenant', String(n), r.http.many.hot);
  out.push('');
  const cost = (runs: Measured[]) =>
    medianCpu(runs, 'server_cpu_ms_per_req') + medianCpu(runs, 'db_cpu_ms_per_req');
  const cost1 = cost(r.http.one.read);
  const costN = cost(r.http.many.read);
  out.push(`| ${n} tenants vs 1 | ratio | bound | result |`);
  out.push('|---|---:|---|---|');
  out.push(
    `| tenant-scoped read, req/s (the target) | ${readRatio.toFixed(3)} (${pct(readRatio)}) | ≥ ${targets.readRatioMin} | ${pass(readOk)} |`,
  );
  out.push(
    `| \`/healthz\` req/s (control: touches no tenant) | ${healthRatio.toFixed(3)} (${pct(healthRatio)}) | — | — |`,
  );
  out.push(
    `| tenant-scoped read req/s ÷ healthz ratio (drift-corrected, indicative) | ${(readRatio / healthRatio).toFixed(3)} | — | — |`,
  );
  out.push(
    `| tenant-scoped read, server + Postgres CPU per request (${fmt(costN, 3)} vs ${fmt(cost1, 3)} ms; > 1 = costlier) | ${(costN / cost1).toFixed(3)} (${pct(costN / cost1)}) | — | — |`,
  );
  if (r.http.many.hot) {
    const hotRatio = rN / medianRps(r.http.many.hot);
    out.push(
      `| random of ${n} vs one hot tenant, req/s (same phase, interleaved) | ${hotRatio.toFixed(3)} (${pct(hotRatio)}) | — | — |`,
    );
  }
  out.push('');

  if (r.peer) {
    const p = r.peer.runs;
    const get = (key: string) => p[key] ?? [];
    out.push('## Side by side with the peer (Directus)');
    out.push('');
    out.push(
      `Same run, same Postgres server, same load generator (autocannon from this package; Directus driven by the peer folder's \`ac.mjs\`, ours by \`bench/load.ts\` with the same settings), ` +
        `${r.settings.runs} runs of each, interleaved (order rotated every round). Directus ${r.peer.version} on Node ${r.peer.nodeVersion} (the peer scripts' default: the last Directus release that runs on Node 20; ours runs on Node 24), set up as \`/work/shared/bench/peers/directus.sh\` does ` +
        `(fresh \`directus\` database, \`directus bootstrap\`, \`directus-setup.mjs\` with ${r.peer.seedCount.toLocaleString('en-US')} seeded records; cache and rate limiter off). ` +
        '**Directus is served over plain HTTP; ours over TLS.** To compare like with like, ours was also run in its behind-a-proxy mode (`STRONGROOM_TRUST_PROXY=127.0.0.1`, plain HTTP, `X-Forwarded-Proto: https`), the way it runs behind a TLS-terminating load balancer.',
    );
    out.push('');
    out.push(
      `Equivalents: \`GET /server/ping\` (anonymous) ↔ our \`GET /healthz\`; \`GET /items/records/<random id of ${r.peer.seedCount.toLocaleString('en-US')}>\` with a static token of a non-admin role ↔ our tenant-scoped read of a random tenant of ${n} with a staff key. ` +
        'Both reads authenticate a bearer token against the database and read one row through a permission layer; ours additionally opens a read-only transaction and switches role.',
    );
    out.push('');
    out.push(
      '| scenario | server | req/s per run | median req/s | p50 ms | p99 ms | server CPU ms/req | Postgres CPU ms/req | non-2xx + errors | req/s ours ÷ Directus | CPU per request Directus ÷ ours |',
    );
    out.push('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    const peerRow = (scenario: string, server: string, key: string, base: string) => {
      const runs = get(key);
      const ratio = medianRps(runs) / medianRps(get(base));
      const cpuRatio = cost(get(base)) / cost(runs);
      const same = key === base;
      out.push(
        `| ${scenario} | ${server} | ${runsCell(runs)} | **${fmt(medianRps(runs))}** | ${fmt(medianOf(runs, 'p50_ms'))} | ${fmt(medianOf(runs, 'p99_ms'))} | ${fmt(medianCpu(runs, 'server_cpu_ms_per_req'), 3)} | ${fmt(medianCpu(runs, 'db_cpu_ms_per_req'), 3)} | ${failures(runs)} | ${same ? '1' : `**${ratio.toFixed(2)}×**`} | ${same ? '1' : `${cpuRatio.toFixed(2)}×`} |`,
      );
    };
    peerRow('health', 'Directus `/server/ping` (HTTP)', 'directus-ping', 'directus-ping');
    peerRow('health', 'Strongroom `/healthz` (TLS)', 'ours-healthz-tls', 'directus-ping');
    peerRow('health', 'Strongroom `/healthz` (HTTP, proxy mode)', 'ours-healthz-http', 'directus-ping');
    peerRow('single read', 'Directus `/items/records/<id>` (HTTP)', 'directus-item', 'directus-item');
    peerRow('single read', `Strongroom tenant read, ${n} tenants (TLS)`, 'ours-read-tls', 'directus-item');
    peerRow(
      'single read',
      `Strongroom tenant read, ${n} tenants (HTTP, proxy mode)`,
      'ours-read-http',
      'directus-item',
    );
    out.push('');
    out.push(
      `Directus setup for the record: bootstrap ${fmt(r.peer.bootstrapMs / 1000)} s, role/token setup and seeding ${fmt(r.peer.seedMs / 1000)} s.`,
    );
    out.push('');
  } else {
    out.push('## Peer');
    out.push('');
    out.push('Skipped in this run (`BENCH_PEER=0`).');
    out.push('');
  }
  return `${out.join('\n')}`;
}
