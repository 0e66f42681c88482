import { userInfo } from 'node:os';
import { Writable } from 'node:stream';
import pino from 'pino';
import { type Config, ConfigError, loadConfig } from '../config/config.ts';
import { openRuntime, type Runtime } from '../main/runtime.ts';
import type { AuditEntry } from '../modules/audit/audit-chain.ts';
import { type ErrorKind, isAppError } from '../platform/errors.ts';
import { newId } from '../platform/ids.ts';
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

/** What a command's platform audit entry says it did, and how to refine it once the command knows more. */
export interface CliAudit {
  /** The resource acted on, once known (a created tenant's id, a staff member's id). */
  resource(type: string | null, id: string | null, tenantId?: string | null): void;
  /** The command ended without throwing but did not fully succeed (a tenant or location failed). */
  failed(errorCode: string): void;
  /**
   * Writes no entry, saying why on stderr: only for a run that changed nothing in a database that
   * holds no platform yet (a refused disaster recovery), whose entry would sit where the recovered
   * audit chain must go.
   */
  skip(reason: string): void;
}

/**
 * Who ran a command, as the operating system says: `cli:<user>`, the user who ran sudo when run
 * through it. Not an authentication (whoever can run the CLI holds the database credentials and the
 * master key already): it names the person for the record, as a shell history would.
 */
export function cliActor(env: Record<string, string | undefined>): string {
  let osUser: string;
  try {
    osUser = userInfo().username;
  } catch {
    // A uid with no passwd entry (some containers): the number is all the system knows.
    osUser = `uid ${process.getuid?.() ?? 'unknown'}`;
  }
  const sudoUser = osUser === 'root' ? env.SUDO_USER : undefined;
  return `cli:${sudoUser || osUser}`.slice(0, 200);
}

/**
 * `withRuntime` for a command that acts on the platform: one entry on the platform chain whatever
 * happens once the runtime is open, with actor `cli:<user>` (kind `system`), the action, the
 * resource, the outcome (`allow`; `deny` or `error` with the error code, mapped as the API maps
 * statuses) and the names of the options given, never their values. The entry is written after the
 * command's own work, so it says how it ended; if it cannot be written the command fails.
 */
export async function withAuditedRuntime<T>(
  context: CliContext,
  what: { action: string; resourceType?: string | null; options?: Record<string, unknown> },
  fn: (runtime: Runtime, config: Config, log: Logger, audit: CliAudit) => Promise<T>,
): Promise<T> {
  return withRuntime(context, async (runtime, config, log) => {
    const given = Object.entries(what.options ?? {})
      .filter(([name, value]) => value !== undefined && value !== false && name !== 'json')
      .map(([name]) => name)
      .sort();
    const entry: AuditEntry = {
      at: new Date(),
      tenantId: null,
      actorKind: 'system',
      actorId: cliActor(context.env),
      apiKeyId: null,
      grantId: null,
      action: what.action,
      resourceType: what.resourceType ?? null,
      resourceId: null,
      outcome: 'allow',
      statusCode: null,
      errorCode: null,
      requestId: newId(),
      ip: null,
      userAgent: 'strongroom-cli',
      changes: given.length > 0 ? given : null,
    };
    const audit: CliAudit = {
      resource(type, id, tenantId) {
        entry.resourceType = type;
        entry.resourceId = id;
        if (tenantId !== undefined) entry.tenantId = tenantId;
      },
      failed(errorCode) {
        entry.outcome = 'error';
        entry.errorCode = errorCode;
      },
      skip(reason) {
        skipped = reason;
      },
    };
    let skipped: string | undefined;
    const write = async () => {
      if (skipped === undefined) return runtime.core.audit.appendPlatform([{ ...entry, at: new Date() }]);
      context.stderr(`not audited: ${skipped}\n`);
    };
    let result: T;
    try {
      result = await fn(runtime, config, log, audit);
    } catch (error) {
      const code = isAppError(error) ? error.code : error instanceof CliExit ? null : 'internal_error';
      const refused = isAppError(error) && deniedKinds.has(error.kind);
      entry.outcome = refused ? 'deny' : 'error';
      entry.errorCode = code;
      // The command's own error is what the operator needs to see; a failed entry is logged.
      await write().catch((writeError) => log.error({ err: writeError }, 'audit entry not written'));
      throw error;
    }
    await write();
    return result;
  });
}

/** Refusals, as the API counts 401, 403, 404 and 429. */
const deniedKinds = new Set<ErrorKind>(['unauthenticated', 'forbidden', 'not_found', 'rate_limited']);

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
