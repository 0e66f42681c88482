import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BoundedProcess, childPid, freePort, spawnBounded, waitForHttp } from './processes.ts';

export interface StrongroomServer {
  origin: string;
  /** The `timeout` wrapper's pid (what we signal). */
  pid: number;
  /** The server's own Node process (what we measure). */
  nodePid: number;
  startMs: number;
  stop(): Promise<void>;
}

/**
 * The real server, `node bin/strongroom.js serve`, in its own process so the load generator never
 * shares its event loop. Over HTTPS with the self-signed certificate it generates in its data
 * folder; or, with `behindProxy`, over plain HTTP the way it runs behind a TLS-terminating load
 * balancer at 127.0.0.1 (then API requests must carry X-Forwarded-Proto: https).
 */
export async function startStrongroom(options: {
  packageDir: string;
  databaseUrl: string;
  masterKeyHex: string;
  dataDir: string;
  logFile: string;
  behindProxy?: boolean;
  /** `STRONGROOM_CACHE` (default `memory:`). */
  cacheUrl?: string;
  /** More environment, e.g. `STRONGROOM_OBJECTS` for the S3 object store. */
  env?: NodeJS.ProcessEnv;
  /** Options for the server's Node, e.g. `--cpu-prof` when profiling. */
  nodeArgs?: string[];
}): Promise<StrongroomServer> {
  const port = await freePort();
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  // A clean environment: nothing of the bench's own (or the shell's STRONGROOM_*) leaks in.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: process.env.LANG,
    DATABASE_URL: options.databaseUrl,
    STRONGROOM_DATA_DIR: options.dataDir,
    STRONGROOM_HOST: '127.0.0.1',
    STRONGROOM_PORT: String(port),
    STRONGROOM_LOG_LEVEL: 'warn',
    STRONGROOM_CACHE: options.cacheUrl ?? 'memory:',
    STRONGROOM_MASTER_KEY: options.masterKeyHex,
    ...(options.behindProxy ? { STRONGROOM_TRUST_PROXY: '127.0.0.1' } : {}),
    ...options.env,
  };
  const proc: BoundedProcess = spawnBounded(
    process.execPath,
    [...(options.nodeArgs ?? []), join(options.packageDir, 'bin/strongroom.js'), 'serve'],
    {
      cwd: options.packageDir,
      env,
      logFile: options.logFile,
      maxSeconds: 3600,
    },
  );
  const origin = `${options.behindProxy ? 'http' : 'https'}://127.0.0.1:${port}`;
  try {
    const startMs = await waitForHttp(`${origin}/healthz`, 60, () => proc.child.exitCode === null);
    const nodePid = childPid(proc.pid);
    if (nodePid === undefined) throw new Error('the server process is gone');
    return { origin, pid: proc.pid, nodePid, startMs, stop: () => proc.stop() };
  } catch (error) {
    await proc.stop();
    throw new Error(`the server did not start (see ${options.logFile})`, { cause: error });
  }
}
