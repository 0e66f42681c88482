// Bounded autocannon driver for our own server, run as its own process (the load generator, the
// server and the bench orchestrator are three processes). Mirrors /work/shared/bench/peers/ac.mjs
// (same connections, pipelining 1, timeout 30 s, random id per request via setupRequest, one JSON
// line out) and adds what that script cannot do: HTTPS with the server's self-signed certificate,
// and ids that are tenant UUIDs read from a file.
// Usage: node bench/load.ts '<json LoadSpec>'
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export interface LoadSpec {
  label: string;
  /** Origin only: https://127.0.0.1:<port> or http://127.0.0.1:<port>. */
  origin: string;
  /** A fixed path, or a template with `{id}` filled per request from `idsFile` (one id a line). */
  path: string;
  idsFile?: string;
  headers?: Record<string, string>;
  /** GET unless given; a `body` is sent as JSON with every request. */
  method?: 'GET' | 'POST';
  body?: unknown;
  connections: number;
  durationS: number;
  warmupS: number;
  /** Requests per second across all connections (a steady offered load); unset = as fast as possible. */
  overallRate?: number;
}

export interface LoadResult {
  label: string;
  connections: number;
  duration_s: number;
  rps_avg: number;
  rps_ok: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  total: number;
  ok_2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** CPU the load generator itself used during the measured run (of 1,000 ms per second per core). */
  client_cpu_ms?: number;
}

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; max: number };
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;

// autocannon ships no types; it is a dev dependency of the project (the only one the bench adds).
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

/** Hard cap per autocannon run, whatever the spec says. */
const maxDurationS = 60;

async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const origin = new URL(spec.origin);
  if (origin.hostname !== '127.0.0.1') throw new Error('loopback targets only');
  const ids = spec.idsFile
    ? readFileSync(spec.idsFile, 'utf8')
        .split('\n')
        .filter((line) => line.length > 0)
    : [];
  if (spec.path.includes('{id}') && ids.length === 0) throw new Error('a {id} path needs ids');
  const pick = () => ids[Math.floor(Math.random() * ids.length)]!;
  const requests = spec.path.includes('{id}')
    ? [
        {
          method: 'GET',
          // A different id per request, so 1,000 tenants are 1,000 tenants and not one hot one.
          setupRequest: (r: Record<string, unknown>) => ({ ...r, path: spec.path.replace('{id}', pick()) }),
        },
      ]
    : [
        {
          method: spec.method ?? 'GET',
          path: spec.path,
          ...(spec.body === undefined ? {} : { body: JSON.stringify(spec.body) }),
        },
      ];
  const options = {
    url: origin.origin,
    connections: spec.connections,
    headers: {
      ...(spec.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(spec.headers ?? {}),
    },
    requests,
    pipelining: 1,
    timeout: 30,
    ...(spec.overallRate ? { overallRate: spec.overallRate } : {}),
    // autocannon's TLS client already connects with rejectUnauthorized: false (the self-signed
    // certificate of the server under test); SNI says localhost, the name on that certificate.
    servername: 'localhost',
  };
  if (spec.warmupS > 0) await autocannon({ ...options, duration: Math.min(spec.warmupS, maxDurationS) });
  const durationS = Math.min(spec.durationS, maxDurationS);
  const cpu0 = process.cpuUsage();
  const result = await autocannon({ ...options, duration: durationS });
  const cpu = process.cpuUsage(cpu0);
  const ok = result['2xx'];
  return {
    label: spec.label,
    connections: spec.connections,
    duration_s: durationS,
    rps_avg: result.requests.average,
    rps_ok: +(ok / durationS).toFixed(1),
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    max_ms: result.latency.max,
    total: result.requests.total,
    ok_2xx: ok,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    client_cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
  };
}

if (import.meta.main) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  console.log(JSON.stringify(await runLoad(spec)));
}
