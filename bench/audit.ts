// Audit log bench: what auditing costs a single-record GET (audit on vs off, same process, same
// database, alternating runs), and how long `audit verify` takes over a long chain.
// Run: node bench/audit.ts   (needs the Postgres server of bench/README.md). Writes bench/RESULTS-audit.md.
// Knobs: BENCH_POSTGRES_URL, BENCH_AUDIT_ENTRIES (default 1,000,000), BENCH_AUDIT_RUNS (5),
// BENCH_AUDIT_DURATION_S (5), BENCH_AUDIT_CONCURRENCY (16).

import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalKeyProvider } from '../src/adapters/keys/key-provider.local.ts';
import { FsObjectStore } from '../src/adapters/object-store/object-store.fs.ts';
import { openDatabase } from '../src/db/database.ts';
import { buildApp } from '../src/http/app.ts';
import { appServices, type Core, composeCore, prepareControlPlane } from '../src/main/compose.ts';
import type { AuditEntry } from '../src/modules/audit/audit-chain.ts';
import { defaultVerifyThreads } from '../src/modules/audit/audit-hash-pool.ts';
import { Secret } from '../src/platform/secret.ts';
import { benchTenant } from './fixtures.ts';
import { adminKysely, clientBackendPids, createBenchDatabase } from './postgres.ts';
import { cpuMs } from './processes.ts';
import { fmt, median } from './stats.ts';

const benchDir = dirname(fileURLToPath(import.meta.url));
const number = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value < 1) throw new Error(`${name} must be a positive number`);
  return value;
};
const settings = {
  adminUrl: process.env.BENCH_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
  entries: number('BENCH_AUDIT_ENTRIES', 1_000_000),
  runs: number('BENCH_AUDIT_RUNS', 5),
  durationS: number('BENCH_AUDIT_DURATION_S', 5),
  concurrency: number('BENCH_AUDIT_CONCURRENCY', 16),
};
const log = (message: string) => process.stderr.write(`[audit bench] ${message}\n`);

const bench = await createBenchDatabase(settings.adminUrl);
const database = await openDatabase({
  kind: 'postgres',
  url: new Secret(bench.url),
  poolSize: 10,
  statementTimeoutMs: 120_000,
  roles: 'auto',
});
try {
  const masterKey = randomBytes(32);
  const objects = new FsObjectStore({ rootDir: mkdtempSync(join(tmpdir(), 'strongroom-audit-bench-')) });
  const coreWith = (enabled: boolean): Core =>
    composeCore({
      database,
      keyProvider: new LocalKeyProvider({ current: masterKey }),
      objects,
      audit: { enabled },
    });
  const on = coreWith(true);
  const off = coreWith(false);
  await prepareControlPlane(on);

  // --- single-record GET, audit on vs off ---
  const tenant = await benchTenant(on, 'audit-bench');
  const record = await on.records.create(tenant.principal, tenant.projectId, {
    collection: 'c',
    data: { name: 'Ada' },
  });
  const url = `/api/v1/projects/${tenant.projectId}/records/${record.record.id}`;
  const appOf = (core: Core) =>
    buildApp(
      { ...appServices(core), readinessChecks: {}, isDraining: () => false },
      { bodyLimitBytes: 1 << 20 },
    );
  const apps = { on: await appOf(on), off: await appOf(off) };
  on.audit.start();
  const admin = adminKysely(settings.adminUrl);
  /** This process's CPU (server and client, the same in both modes) plus its Postgres backends'. */
  const cpuNowMs = async () => {
    const own = process.cpuUsage();
    const backends = await clientBackendPids(admin, bench.name);
    return (own.user + own.system) / 1000 + backends.reduce((sum, pid) => sum + cpuMs(pid), 0);
  };
  const cpuPerRequestMs: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const measure = async (mode: 'on' | 'off'): Promise<number> => {
    const app = apps[mode];
    const cpuStart = await cpuNowMs();
    const until = performance.now() + settings.durationS * 1000;
    let done = 0;
    const worker = async () => {
      while (performance.now() < until) {
        const response = await app.inject({
          method: 'GET',
          url,
          headers: { authorization: `Bearer ${tenant.sessionToken}` },
        });
        if (response.statusCode !== 200) throw new Error(`GET answered ${response.statusCode}`);
        done++;
      }
    };
    await Promise.all(Array.from({ length: settings.concurrency }, worker));
    // What this run queued is written now, and counted here, not in the next run.
    if (mode === 'on') await on.audit.flush();
    cpuPerRequestMs[mode].push(((await cpuNowMs()) - cpuStart) / done);
    return done / settings.durationS;
  };
  await measure('on');
  await measure('off'); // warm-up
  cpuPerRequestMs.on.length = 0;
  cpuPerRequestMs.off.length = 0;
  const rates: Record<'on' | 'off', number[]> = { on: [], off: [] };
  for (let run = 0; run < settings.runs; run++) {
    // Alternate which goes first, so neither always gets the warmer slot.
    for (const mode of run % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      rates[mode].push(await measure(mode));
      log(
        `GET audit ${mode}: ${fmt(rates[mode].at(-1)!)} req/s, ${fmt(cpuPerRequestMs[mode].at(-1)!, 3)} ms CPU/req`,
      );
    }
  }
  await on.audit.stop();
  const onRps = median(rates.on);
  const offRps = median(rates.off);
  const costPercent = ((offRps - onRps) / offRps) * 100;
  const onCpu = median(cpuPerRequestMs.on);
  const offCpu = median(cpuPerRequestMs.off);
  const cpuCostPercent = ((onCpu - offCpu) / offCpu) * 100;
  await admin.destroy();

  // --- verify over a long chain ---
  const chainTenant = await on.tenants.create({
    slug: 'audit-chain',
    name: 'Chain',
    ownerEmail: 'o@chain.test',
  });
  const tenantId = chainTenant.tenant.id;
  const entry = (i: number): AuditEntry => ({
    at: new Date(Date.UTC(2026, 0, 1) + i),
    tenantId,
    actorKind: 'user',
    actorId: '6b1d0c8e-5d8a-4c1e-9a53-2c3f1f0d9a11',
    apiKeyId: null,
    grantId: null,
    action: i % 5 ? 'records.read' : 'records.update',
    resourceType: 'records',
    resourceId: '0f8b6f0e-7f56-4a3a-8f2b-3f0f1f9d2c11',
    outcome: 'allow',
    statusCode: 200,
    errorCode: null,
    requestId: 'c1b9a4c2-7c1e-4f58-9d9a-4c8e2f7a1b22',
    ip: '192.0.2.10',
    // A real browser's: spaces and parentheses, so it is quoted in the record literal verify reads.
    userAgent:
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    changes: i % 5 ? null : ['data.name'],
  });
  const batch = 2_000;
  const appendStart = performance.now();
  for (let written = 0; written < settings.entries; written += batch) {
    const count = Math.min(batch, settings.entries - written);
    await on.withTenant(tenantId, (scope) =>
      on.audit.append(
        scope,
        Array.from({ length: count }, (_, i) => entry(written + i)),
      ),
    );
    if ((written / batch) % 50 === 0) log(`appended ${written} entries`);
  }
  const appendS = (performance.now() - appendStart) / 1000;
  await on.audit.checkpoint(tenantId, { force: true });
  // Median of the runs; CPU is this process's, every thread (the hash workers too), not Postgres's.
  const verifyRuns: Array<{ wallS: number; cpuS: number }> = [];
  let report: Awaited<ReturnType<typeof on.audit.verify>> | undefined;
  for (let run = 0; run < settings.runs; run++) {
    const cpuStart = process.cpuUsage();
    const verifyStart = performance.now();
    report = await on.audit.verify(tenantId);
    const cpu = process.cpuUsage(cpuStart);
    verifyRuns.push({ wallS: (performance.now() - verifyStart) / 1000, cpuS: (cpu.user + cpu.system) / 1e6 });
    if (!report.ok) throw new Error(`the bench chain does not verify: ${JSON.stringify(report.problem)}`);
    log(`verify: ${report.entries} entries in ${verifyRuns.at(-1)!.wallS.toFixed(1)} s`);
  }
  const verifyS = median(verifyRuns.map((r) => r.wallS));
  const verifyCpuS = median(verifyRuns.map((r) => r.cpuS));

  const text = `# Audit log bench

Produced by \`node bench/audit.ts\` on ${new Date().toISOString()}: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}),
load average at the end ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; Postgres at ${new URL(settings.adminUrl).host}.
The machine is shared with other work, so compare numbers of the same run only.

## Single-record GET, audit on vs off

In one process over one database: the same app built twice, once with auditing on (each request
queues its entry; the batch writer writes every 250 ms), once with it off. Requests go through
\`app.inject\` (no TLS, no socket), ${settings.concurrency} at a time, ${settings.durationS} s per run,
${settings.runs} runs each, alternating which mode goes first; median shown. Without the network and
TLS, fixed costs are smaller than on a real server, so the relative cost here is an upper bound.

| | req/s (median) | runs | CPU ms per request (median) | runs |
| --- | --- | --- | --- | --- |
| audit off | ${fmt(offRps)} | ${rates.off.map(fmt).join(', ')} | ${fmt(offCpu, 3)} | ${cpuPerRequestMs.off.map((v) => fmt(v, 3)).join(', ')} |
| audit on | ${fmt(onRps)} | ${rates.on.map(fmt).join(', ')} | ${fmt(onCpu, 3)} | ${cpuPerRequestMs.on.map((v) => fmt(v, 3)).join(', ')} |

Audit cost: **${costPercent.toFixed(1)} %** of read throughput (target ≤ 15 %); by CPU per request
(this process, client and server alike in both modes, plus its Postgres backends; the "on" runs
include writing their entries), **${cpuCostPercent.toFixed(1)} %**. On a machine shared with other
work req/s moves a lot between runs; CPU per request much less.

## \`audit verify\` over a long chain

${report!.entries.toLocaleString('en')} entries (appended in transactions of ${batch} in ${appendS.toFixed(1)} s),
one checkpoint at the head, verified (every hash recomputed, every link and checkpoint checked)
${settings.runs} times: median **${verifyS.toFixed(1)} s** (target ≤ 10 s for 1,000,000); runs
${verifyRuns.map((r) => `${r.wallS.toFixed(1)} s`).join(', ')}. CPU of this process (main thread and
${defaultVerifyThreads()} hash worker threads, on ${cpus().length} CPUs): median ${verifyCpuS.toFixed(1)} s.
`;
  writeFileSync(join(benchDir, 'RESULTS-audit.md'), text);
  log('wrote bench/RESULTS-audit.md');
  await apps.on.close();
  await apps.off.close();
} finally {
  await database.close();
  await bench.drop();
}
