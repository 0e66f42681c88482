import { join } from 'node:path';
import type { Core } from '../src/main/compose.ts';
import { benchTenant } from './fixtures.ts';
import type { LoadResult } from './load.ts';
import { runLoadProcess } from './processes.ts';
import { fmt, median } from './stats.ts';
import { startStrongroom } from './strongroom-server.ts';

/** The bar: B's p99 rises by less than 20 % while A floods at 10× its limit; B sees no errors. */
export const noisyTargets = { maxP99Rise: 0.2, floodFactor: 10 };

export interface NoisyNeighbourOptions {
  core: Core;
  databaseUrl: string;
  masterKeyHex: string;
  packageDir: string;
  tmp: string;
  /** `STRONGROOM_CACHE` for the server (a shared cache, as a multi-node deployment would have). */
  cacheUrl: string;
  /** Baseline/noisy pairs, alternated so drift in the machine's load hits both alike. */
  rounds: number;
  phaseS: number;
  /** A's request limit (requests per second); A offers `floodFactor` times that. */
  aLimit: number;
  /** B's steady load, requests per second, well inside its own limit. */
  bRate: number;
  log: (line: string) => void;
}

export interface NoisyNeighbourResults {
  aLimit: number;
  aOffered: number;
  bRate: number;
  phaseS: number;
  rounds: Array<{ baseline: LoadResult; noisy: LoadResult; flood: LoadResult }>;
  /** Medians over the rounds. */
  baselineP99Ms: number;
  noisyP99Ms: number;
  p99Rise: number;
  bFailures: number;
  /** Of A's requests during the floods: answered 2xx per second, and refused (429 or other non-2xx). */
  aAdmittedPerS: number;
  aRefused: number;
}

/**
 * Two tenants on one real server (Postgres, shared cache, HTTPS): B reads records at a steady rate
 * while A offers ten times its own rate limit. Each round measures B alone, then B beside A's flood,
 * each load generator in its own process.
 */
export async function runNoisyNeighbour(options: NoisyNeighbourOptions): Promise<NoisyNeighbourResults> {
  const { core, log } = options;
  const suffix = Math.random().toString(36).slice(2, 8);
  const a = await benchTenant(core, `noisy-a-${suffix}`);
  const b = await benchTenant(core, `noisy-b-${suffix}`);
  await core.quotas.setLimits(a.principal.tenantId, { requestsPerSecond: options.aLimit });
  const recordOf = async (tenant: typeof a) =>
    (await core.records.create(tenant.principal, tenant.projectId, { collection: 'items', data: { n: 1 } }))
      .record.id;
  const aRecord = await recordOf(a);
  const bRecord = await recordOf(b);

  const server = await startStrongroom({
    packageDir: options.packageDir,
    databaseUrl: options.databaseUrl,
    masterKeyHex: options.masterKeyHex,
    dataDir: join(options.tmp, `noisy-server-${suffix}`),
    logFile: join(options.tmp, `noisy-server-${suffix}.log`),
    cacheUrl: options.cacheUrl,
  });
  const aOffered = options.aLimit * noisyTargets.floodFactor;
  const bSpec = {
    label: 'B steady reads',
    origin: server.origin,
    path: `/api/v1/projects/${b.projectId}/records/${bRecord}`,
    headers: { authorization: `Bearer ${b.sessionToken}` },
    connections: 8,
    overallRate: options.bRate,
    durationS: options.phaseS,
    warmupS: 0,
  };
  const floodSpec = {
    label: 'A flood',
    origin: server.origin,
    path: `/api/v1/projects/${a.projectId}/records/${aRecord}`,
    headers: { authorization: `Bearer ${a.sessionToken}` },
    connections: 16,
    overallRate: aOffered,
    // Starts with B and outlasts it, so every one of B's requests meets the flood.
    durationS: options.phaseS + 1,
    warmupS: 0,
  };
  const rounds: NoisyNeighbourResults['rounds'] = [];
  try {
    await runLoadProcess({ ...bSpec, label: 'warm-up', durationS: Math.min(3, options.phaseS) });
    for (let round = 0; round < options.rounds; round++) {
      const baseline = await runLoadProcess(bSpec);
      const [noisy, flood] = await Promise.all([
        runLoadProcess({ ...bSpec, label: 'B beside the flood' }),
        runLoadProcess(floodSpec),
      ]);
      rounds.push({ baseline, noisy, flood });
      log(
        `  round ${round + 1}: B p99 ${baseline.p99_ms} ms alone, ${noisy.p99_ms} ms beside A ` +
          `(A: ${flood.ok_2xx} admitted, ${flood.non2xx} refused of ${flood.total})`,
      );
    }
  } finally {
    await server.stop();
  }
  const baselineP99Ms = median(rounds.map((r) => r.baseline.p99_ms));
  const noisyP99Ms = median(rounds.map((r) => r.noisy.p99_ms));
  const floodSeconds = rounds.reduce((sum, r) => sum + r.flood.duration_s, 0);
  return {
    aLimit: options.aLimit,
    aOffered,
    bRate: options.bRate,
    phaseS: options.phaseS,
    rounds,
    baselineP99Ms,
    noisyP99Ms,
    p99Rise: noisyP99Ms / baselineP99Ms - 1,
    bFailures: rounds.reduce(
      (sum, r) =>
        sum + r.noisy.non2xx + r.noisy.errors + r.noisy.timeouts + r.baseline.non2xx + r.baseline.errors,
      0,
    ),
    aAdmittedPerS: rounds.reduce((sum, r) => sum + r.flood.ok_2xx, 0) / floodSeconds,
    aRefused: rounds.reduce((sum, r) => sum + r.flood.non2xx, 0),
  };
}

export function renderNoisyNeighbour(results: NoisyNeighbourResults, meta: Record<string, unknown>): string {
  const pass = (ok: boolean) => (ok ? 'met' : '**not met**');
  const lines = [
    '# Noisy neighbour: one tenant floods, another keeps its service',
    '',
    `Generated by \`BENCH_SCENARIOS=noisy npm run bench\`; ${JSON.stringify(meta)}`,
    '',
    `Tenant A's limit is ${results.aLimit} req/s and it offers ${results.aOffered} req/s (${noisyTargets.floodFactor}×); ` +
      `tenant B reads one record by id at ${results.bRate} req/s (8 connections). ${results.rounds.length} rounds of ` +
      `${results.phaseS} s alone then ${results.phaseS} s beside the flood, on one server (Postgres, Redis, HTTPS).`,
    '',
    '| round | B p99 alone (ms) | B p99 beside A (ms) | B non-2xx/errors | A admitted | A refused |',
    '|---|---|---|---|---|---|',
    ...results.rounds.map(
      (r, i) =>
        `| ${i + 1} | ${r.baseline.p99_ms} | ${r.noisy.p99_ms} | ${r.noisy.non2xx + r.noisy.errors + r.noisy.timeouts} | ${r.flood.ok_2xx} | ${r.flood.non2xx} |`,
    ),
    '',
    `- B's p99, median of rounds: ${fmt(results.baselineP99Ms)} ms alone, ${fmt(results.noisyP99Ms)} ms beside A: ` +
      `rise ${fmt(results.p99Rise * 100, 1)} % (target < ${noisyTargets.maxP99Rise * 100} %): ${pass(results.p99Rise < noisyTargets.maxP99Rise)}`,
    `- B's failures: ${results.bFailures} (target 0): ${pass(results.bFailures === 0)}`,
    `- A admitted ${fmt(results.aAdmittedPerS, 1)} req/s against its limit of ${results.aLimit}; ${results.aRefused} requests refused with 429.`,
    '',
  ];
  return lines.join('\n');
}
