import { Writable } from 'node:stream';
import pino from 'pino';
import { type Config, ConfigError, loadConfig } from '../config/config.ts';
import { openRuntime, type Runtime } from '../main/runtime.ts';
import { type ErrorKind, isAppError } from '../platform/errors.ts';
import type { Logger } from '../platform/logger.ts';

/** What every command gets: its environment and where to write. Tests pass their own. */
export interface CliContext {
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal (progress bars redraw in place only there). */
  isInteractive: boolean;
}

/** The only place that maps an error kind to a process exit code. */
const exitCodeByKind: Record<ErrorKind, number> = {
  invalid: 2,
  too_large: 2,
  range_not_satisfiable: 2,
  unsupported: 2,
  unauthenticated: 3,
  forbidden: 3,
  not_found: 4,
  conflict: 5,
  precondition_failed: 5,
  precondition_required: 5,
  rate_limited: 6,
  unavailable: 7,
  integrity: 8,
  internal: 1,
};

/** sysexits.h EX_CONFIG. */
export const configErrorExitCode = 78;

export class CliExit extends Error {
  readonly exitCode: number;

  constructor(exitCode: number) {
    super(`exit ${exitCode}`);
    this.exitCode = exitCode;
  }
}

/** Prints an error as `error [code]: message` (never a stack trace) and returns the exit code. */
export function reportError(context: CliContext, error: unknown): number {
  if (error instanceof CliExit) return error.exitCode;
  if (error instanceof ConfigError) {
    context.stderr(`error [invalid_config]: ${error.message}\n`);
    return configErrorExitCode;
  }
  if (isAppError(error)) {
    context.stderr(`error [${error.code}]: ${error.message}\n`);
    return exitCodeByKind[error.kind];
  }
  context.stderr(`error [internal_error]: ${(error as Error)?.message ?? String(error)}\n`);
  return 1;
}

/**
 * A logger for commands: human lines on stderr (`warning: …`), since a person reads them. The
 * server logs JSON instead.
 */
export function createCliLogger(context: CliContext, level: string): Logger {
  const names: Record<number, string> = {
    10: 'trace',
    20: 'debug',
    30: 'info',
    40: 'warning',
    50: 'error',
    60: 'fatal',
  };
  const destination = new Writable({
    write(chunk, _encoding, done) {
      const {
        level: n,
        msg,
        time: _time,
        pid: _pid,
        hostname: _host,
        name: _name,
        ...rest
      } = JSON.parse(String(chunk));
      const extras = Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      context.stderr(`${names[n] ?? 'log'}: ${msg}${extras ? ` (${extras})` : ''}\n`);
      done();
    },
  });
  return pino({ level, name: 'strongroom' }, destination);
}

export function loadCliConfig(context: CliContext): Config {
  return loadConfig(context.env);
}

/** Runs `fn` with an open runtime (database, keys, cache, objects, mail) and always closes it. */
export async function withRuntime<T>(
  context: CliContext,
  fn: (runtime: Runtime, config: Config, log: Logger) => Promise<T>,
): Promise<T> {
  const config = loadCliConfig(context);
  const log = createCliLogger(context, config.log.level);
  const runtime = await openRuntime(config, log);
  try {
    return await fn(runtime, config, log);
  } finally {
    await runtime.close();
  }
}

/** A plain aligned table for people; `--json` gives machines the real thing. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}
