import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { LoadResult } from './load.ts';
import { adminKysely } from './postgres.ts';
import {
  type BoundedProcess,
  childPid,
  freePort,
  runBounded,
  runForOutput,
  spawnBounded,
  waitForHttp,
} from './processes.ts';

/**
 * The peer, Directus, set up the way /work/shared/bench/peers/directus.sh does it: npm-installed
 * into its own folder under /tmp/perf (never a dependency of this package), `directus bootstrap` on
 * a fresh `directus` database in the same Postgres server, then `directus-setup.mjs` (called as is)
 * creates the `records` collection, a non-admin role with a static token and seeds the items. The
 * install/env/bootstrap steps are inline in directus.sh rather than functions, so they are mirrored
 * here with the same settings; the setup and load scripts are the peer folder's own.
 */
export interface PeerOptions {
  peersDir: string;
  installDir: string;
  version: string;
  /** The Node that runs Directus: the one npm used to install it (isolated-vm is built for its ABI). */
  nodeBin: string;
  adminUrl: string;
  seedCount: number;
  logDir: string;
}

export interface RunningPeer {
  url: string;
  /** Directus's own Node process (the child of its `timeout` wrapper). */
  nodePid: number;
  database: string;
  token: string;
  version: string;
  nodeVersion: string;
  bootstrapMs: number;
  seedMs: number;
  stop(): Promise<void>;
}

const database = 'directus';
const token = 'bench-user-static-token-0001';
const admin = { email: 'admin@example.com', password: 'adminpass123' };

/** `npm install directus@<version> pg` into the peer folder, unless it is already there (≈ 3 min). */
export async function installDirectus(options: PeerOptions): Promise<void> {
  if (existsSync(join(options.installDir, 'node_modules/directus/cli.js'))) return;
  mkdirSync(options.installDir, { recursive: true });
  writeFileSync(join(options.installDir, 'package.json'), '{"name":"directus-peer","private":true}\n');
  await runBounded('npm', ['install', '--no-audit', '--no-fund', `directus@${options.version}`, 'pg'], {
    cwd: options.installDir,
    env: peerPathEnv(options),
    logFile: join(options.logDir, 'directus-npm-install.log'),
    maxSeconds: 900,
  });
}

/** Fresh `directus` database, bootstrap, start, setup + seed. The caller stops it. */
export async function startDirectus(options: PeerOptions): Promise<RunningPeer> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dir = options.installDir;
  rmSync(join(dir, 'bench-uploads'), { recursive: true, force: true });
  mkdirSync(join(dir, 'bench-uploads'), { recursive: true });
  mkdirSync(join(dir, 'bench-extensions'), { recursive: true });
  const pgUrl = new URL(options.adminUrl);
  // The same settings as directus.sh's directus.env, except the port (a free one) and the database
  // user: the superuser the bench already uses (trust auth) instead of a `bench` role that would
  // outlive the run.
  const env: NodeJS.ProcessEnv = {
    ...peerPathEnv(options),
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: url,
    DB_CLIENT: 'pg',
    DB_HOST: pgUrl.hostname,
    DB_PORT: pgUrl.port || '5432',
    DB_DATABASE: database,
    DB_USER: decodeURIComponent(pgUrl.username) || 'postgres',
    DB_PASSWORD: decodeURIComponent(pgUrl.password) || 'unused-trust-auth',
    KEY: 'bench-key-0000000000000000000000',
    SECRET: 'bench-secret-00000000000000000000',
    ADMIN_EMAIL: admin.email,
    ADMIN_PASSWORD: admin.password,
    TELEMETRY: 'false',
    LOG_LEVEL: 'warn',
    CACHE_ENABLED: 'false',
    RATE_LIMITER_ENABLED: 'false',
    STORAGE_LOCATIONS: 'local',
    STORAGE_LOCAL_DRIVER: 'local',
    STORAGE_LOCAL_ROOT: join(dir, 'bench-uploads'),
    EXTENSIONS_PATH: join(dir, 'bench-extensions'),
    SERVE_APP: 'false',
  };

  const server = adminKysely(options.adminUrl);
  try {
    await sql`drop database if exists ${sql.id(database)} with (force)`.execute(server);
    await sql`create database ${sql.id(database)}`.execute(server);
  } finally {
    await server.destroy();
  }

  const cli = join(dir, 'node_modules/directus/cli.js');
  let t0 = performance.now();
  await runBounded(options.nodeBin, [cli, 'bootstrap'], {
    cwd: dir,
    env,
    logFile: join(options.logDir, 'directus-bootstrap.log'),
    maxSeconds: 300,
  });
  const bootstrapMs = performance.now() - t0;

  const proc: BoundedProcess = spawnBounded(options.nodeBin, [cli, 'start'], {
    cwd: dir,
    env,
    logFile: join(options.logDir, 'directus-server.log'),
    maxSeconds: 3600,
  });
  try {
    await waitForHttp(`${url}/server/ping`, 120, () => proc.child.exitCode === null);
    t0 = performance.now();
    const setup = await runForOutput(options.nodeBin, [join(options.peersDir, 'directus-setup.mjs')], {
      cwd: dir,
      env: {
        ...env,
        DURL: url,
        BENCH_TOKEN: token,
        SEED_N: String(options.seedCount),
      },
      maxSeconds: 600,
    });
    if (!setup.includes('"ok":true')) throw new Error(`directus-setup.mjs did not confirm: ${setup}`);
    const seedMs = performance.now() - t0;
    const nodeVersion = (
      await runForOutput(options.nodeBin, ['-v'], { cwd: dir, env, maxSeconds: 10 })
    ).trim();
    const nodePid = childPid(proc.pid);
    if (nodePid === undefined) throw new Error('the Directus process is gone');
    return {
      url,
      nodePid,
      database,
      token,
      version: options.version,
      nodeVersion,
      bootstrapMs,
      seedMs,
      stop: async () => {
        await proc.stop();
        rmSync(join(dir, 'bench-uploads'), { recursive: true, force: true });
      },
    };
  } catch (error) {
    await proc.stop();
    throw error;
  }
}

/** Drops the peer's database at the end of the run. */
export async function dropDirectusDatabase(adminUrl: string): Promise<void> {
  const server = adminKysely(adminUrl);
  try {
    await sql`drop database if exists ${sql.id(database)} with (force)`.execute(server);
  } finally {
    await server.destroy();
  }
}

/**
 * One measured run against the peer through the peer folder's own `ac.mjs` (warm-up run first,
 * output discarded, as directus.sh does). It is run by this bench's Node with PERF_TOOLS pointing
 * at this package, so it loads the same autocannon as our own load runs: same client, same
 * settings, only the server differs.
 */
export async function loadPeer(
  options: { peersDir: string; packageDir: string },
  peer: RunningPeer,
  run: {
    mode: 'plain' | 'get-one' | 'post';
    label: string;
    connections: number;
    durationS: number;
    warmupS: number;
    ids: number;
  },
  /** Wraps the measured run only (not the warm-up), e.g. to sample CPU around it. */
  around: (measure: () => Promise<LoadResult>) => Promise<LoadResult> = (measure) => measure(),
): Promise<LoadResult> {
  const script = join(options.peersDir, 'ac.mjs');
  const url = run.mode === 'plain' ? `${peer.url}/server/ping` : peer.url;
  const common = [
    script,
    '--url',
    url,
    '--mode',
    run.mode,
    '--connections',
    String(run.connections),
    '--ids',
    String(run.ids),
  ];
  // The ping is anonymous like our /healthz: a token would make Directus look the user up on every request.
  if (run.mode !== 'plain') common.push('--token', peer.token);
  const env = { ...process.env, PERF_TOOLS: options.packageDir };
  if (run.warmupS > 0) {
    await runForOutput(process.execPath, [...common, '--duration', String(run.warmupS)], {
      cwd: options.packageDir,
      env,
      maxSeconds: 90,
    });
  }
  return around(async () => {
    const out = await runForOutput(
      process.execPath,
      [...common, '--duration', String(run.durationS), '--label', run.label],
      { cwd: options.packageDir, env, maxSeconds: 90 },
    );
    return JSON.parse(out.trim().split('\n').at(-1)!) as LoadResult;
  });
}

/** PATH with the peer's Node first, so npm and Directus's own child processes use it too. */
function peerPathEnv(options: PeerOptions): NodeJS.ProcessEnv {
  const binDir = options.nodeBin.includes('/')
    ? options.nodeBin.slice(0, options.nodeBin.lastIndexOf('/'))
    : '';
  const path = (process.env.PATH ?? '')
    .split(':')
    .filter((p) => !p.includes('node_modules'))
    .join(':');
  return { HOME: process.env.HOME, LANG: process.env.LANG, PATH: binDir ? `${binDir}:${path}` : path };
}
