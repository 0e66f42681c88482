import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult, LoadSpec } from './load.ts';

/** Every process the bench starts, so an interrupted run can still stop them (by pid, never by name). */
const started = new Set<ChildProcess>();

export interface BoundedProcess {
  pid: number;
  child: ChildProcess;
  /** SIGTERM, then SIGKILL after `graceMs`. Resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts a long-running process under coreutils `timeout`, so it dies after `maxSeconds` even if the
 * bench itself is killed hard; `timeout` forwards our SIGTERM to it. Output goes to `logFile`.
 */
export function spawnBounded(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; logFile: string; maxSeconds: number },
): BoundedProcess {
  const fd = openSync(options.logFile, 'w');
  const child = spawn('timeout', ['-k', '5', String(options.maxSeconds), command, ...args], {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  started.add(child);
  const exited = once(child, 'exit').catch(() => undefined);
  return {
    pid: child.pid!,
    child,
    stop: async (graceMs = 15_000) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      started.delete(child);
    },
  };
}

/** Last resort on an interrupted run: SIGTERM every process we started that is still running. */
export function killStarted(): void {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
}

/** Runs a command to completion (bounded by `timeout`), with output to `logFile`; rejects on a non-zero exit. */
export async function runBounded(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; logFile: string; maxSeconds: number },
): Promise<void> {
  const proc = spawnBounded(command, args, options);
  const [code] = (await once(proc.child, 'exit')) as [number | null];
  started.delete(proc.child);
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}; see ${options.logFile}`);
}

/** Runs a command (bounded) and returns its stdout; stderr is inherited. */
export async function runForOutput(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; maxSeconds: number },
): Promise<string> {
  const child = spawn('timeout', ['-k', '5', String(options.maxSeconds), command, ...args], {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.add(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  started.delete(child);
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}`);
  return out;
}

/** A port nobody listens on right now (127.0.0.1). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** GET `url` once; resolves to the status and body. Self-signed TLS is accepted (loopback only). */
export function fetchOnce(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const target = new URL(url);
  if (target.hostname !== '127.0.0.1') throw new Error('loopback targets only');
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      // The server's certificate is the self-signed one it generated for localhost.
      { headers, timeout: 2_000, rejectUnauthorized: false, servername: 'localhost' },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Polls `url` until it answers 2xx, at most `maxSeconds`; returns the milliseconds it took. */
export async function waitForHttp(
  url: string,
  maxSeconds: number,
  isAlive: () => boolean = () => true,
): Promise<number> {
  const t0 = performance.now();
  const deadline = t0 + maxSeconds * 1000;
  while (performance.now() < deadline) {
    if (!isAlive()) throw new Error(`the process behind ${url} exited`);
    try {
      const { status } = await fetchOnce(url);
      if (status >= 200 && status < 300) return performance.now() - t0;
    } catch {
      // Not listening yet: retry below.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer within ${maxSeconds} s`);
}

/** CPU time (user + system) of a process so far, in milliseconds; 0 when it is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks (USER_HZ = 100 on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
  } catch {
    return 0;
  }
}

const clockTicksPerSecond = 100;

/** The first child process of `pid` (the program `timeout` runs), found through /proc. */
export function childPid(pid: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) return Number(entry);
    } catch {
      // The process ended while we looked: not the one we want.
    }
  }
  return undefined;
}

/** One autocannon run (bench/load.ts) in its own process, so it never shares an event loop with us. */
export async function runLoadProcess(spec: LoadSpec): Promise<LoadResult> {
  const benchDir = dirname(fileURLToPath(import.meta.url));
  const out = await runForOutput(process.execPath, [join(benchDir, 'load.ts'), JSON.stringify(spec)], {
    cwd: dirname(benchDir),
    env: process.env,
    maxSeconds: spec.durationS + spec.warmupS + 60,
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as LoadResult;
}

/**
 * The bare Fastify yardstick (bare-server.ts) in its own process over the given TLS certificate
 * folder; with `databaseUrl`, its `/row` reads one row from Postgres too. Stop it with `stop`.
 */
export async function startBareServer(options: {
  certDir: string;
  databaseUrl?: string;
  logFile: string;
}): Promise<{ origin: string; nodePid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const proc = spawnBounded(
    process.execPath,
    [
      join(dirname(fileURLToPath(import.meta.url)), 'bare-server.ts'),
      String(port),
      join(options.certDir, 'localhost.crt'),
      join(options.certDir, 'localhost.key'),
      ...(options.databaseUrl ? [options.databaseUrl] : []),
    ],
    {
      cwd: join(dirname(fileURLToPath(import.meta.url)), '..'),
      env: process.env,
      logFile: options.logFile,
      maxSeconds: 3600,
    },
  );
  const origin = `https://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${origin}/healthz`, 30, () => proc.child.exitCode === null);
  } catch (error) {
    await proc.stop();
    throw error;
  }
  // spawnBounded runs the command under `timeout`; the Node process is its child.
  const nodePid = childPid(proc.pid);
  if (nodePid === undefined) {
    await proc.stop();
    throw new Error('the bare server process is gone');
  }
  return { origin, nodePid, stop: () => proc.stop() };
}
