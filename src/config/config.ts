import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { Secret } from '../platform/secret.ts';

/**
 * The whole configuration, one zod schema grouped by concern. `loadConfig(env)` runs once in
 * `main/`, before anything starts, and reports every bad variable at once. Nothing else in the code
 * base reads `process.env`.
 */

const port = z.coerce
  .number({ error: 'must be a port number (1-65535)' })
  .int({ error: 'must be a port number (1-65535)' })
  .min(1, { error: 'must be a port number (1-65535)' })
  .max(65_535, { error: 'must be a port number (1-65535)' });
const positiveMs = z.coerce
  .number({ error: 'must be a whole number of milliseconds' })
  .int({ error: 'must be a whole number of milliseconds' })
  .min(1, { error: 'must be at least 1 ms' });

const databaseUrl = z
  .string()
  .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// or postgresql:// URL');
const objectsUrl = z
  .string()
  .refine(
    (v) => v.startsWith('file://') || v.startsWith('s3://'),
    'must be file://<folder> or s3://<bucket>?…',
  );
const mailUrl = z
  .string()
  .refine(
    (v) => v === 'outbox:' || /^smtps?:\/\//.test(v),
    'must be outbox:, smtp://host[:port] or smtps://host[:port]',
  );
const cacheUrl = z
  .string()
  .refine(
    (v) => v === 'memory:' || /^(memcached|redis|rediss):\/\//.test(v),
    'must be memory:, memcached://host:port or redis://host:port',
  );

/** A proxy allowlist: IPv4/IPv6 addresses or CIDRs, comma-separated. */
const trustProxy = z
  .string()
  .transform((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  )
  .refine((list) => list.length > 0, 'must list at least one address or CIDR')
  .refine(
    (list) => list.every((s) => /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(s)),
    'must be IP addresses or CIDRs, comma-separated',
  );

const envSchema = z.object({
  STRONGROOM_HOST: z.string().min(1).default('127.0.0.1'),
  STRONGROOM_PORT: port.default(8443),
  STRONGROOM_HTTP_PORT: port.optional(),
  STRONGROOM_TRUST_PROXY: trustProxy.optional(),
  STRONGROOM_DATA_DIR: z.string().min(1).default('./.strongroom'),
  STRONGROOM_TLS_CERT_FILE: z.string().min(1).optional(),
  STRONGROOM_TLS_KEY_FILE: z.string().min(1).optional(),
  STRONGROOM_BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(1024 ** 3)
    .default(1024 * 1024),
  STRONGROOM_SHUTDOWN_GRACE_MS: positiveMs.default(10_000),
  STRONGROOM_RECORD_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
  STRONGROOM_ATTACHMENT_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(64 * 1024 ** 3)
    .default(1024 ** 3),
  STRONGROOM_RESTORE_WINDOW_DAYS: z.coerce.number().int().min(1).max(35).default(7),
  // Per-tenant defaults; operators override them per tenant (PUT /api/v1/ops/tenants/{id}/limits).
  STRONGROOM_TENANT_REQUESTS_PER_SECOND: z.coerce.number().int().min(1).max(1_000_000).default(1_000),
  STRONGROOM_TENANT_CONCURRENT_REQUESTS: z.coerce.number().int().min(1).max(100_000).default(64),
  STRONGROOM_TENANT_MAX_RECORDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .default(10_000_000),
  STRONGROOM_TENANT_MAX_STORAGE_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .default(100 * 1024 ** 3),
  // Support access with the customer's consent: the longest grant, and how long a request waits.
  STRONGROOM_SUPPORT_GRANT_MAX_HOURS: z.coerce.number().int().min(1).max(720).default(24),
  STRONGROOM_SUPPORT_REQUEST_EXPIRY_HOURS: z.coerce.number().int().min(1).max(720).default(96),
  // Emergency access confirmed by a second staff member instead of the tenant: off unless enabled.
  STRONGROOM_BREAK_GLASS: z.enum(['off', 'on']).default('off'),
  STRONGROOM_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info'),

  DATABASE_URL: databaseUrl.optional(),
  STRONGROOM_DB_POOL_SIZE: z.coerce.number().int().min(1).max(500).default(10),
  STRONGROOM_DB_STATEMENT_TIMEOUT_MS: positiveMs.default(5_000),
  STRONGROOM_DB_ROLES: z.enum(['auto', 'on', 'off']).default('auto'),

  STRONGROOM_OBJECTS: objectsUrl.optional(),
  STRONGROOM_S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  STRONGROOM_S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),

  STRONGROOM_CACHE: cacheUrl.default('memory:'),

  STRONGROOM_BACKUP_LOCATIONS: z.string().min(1).optional(),
  STRONGROOM_BACKUP_CREDENTIALS: z.string().min(1).optional(),
  STRONGROOM_BACKUP_SHIP_INTERVAL_MS: positiveMs.max(60_000).default(2_000),
  STRONGROOM_BACKUP_SNAPSHOT_INTERVAL_HOURS: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 7)
    .default(24),
  STRONGROOM_BACKUP_DRILL_INTERVAL_HOURS: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 30)
    .default(24),
  STRONGROOM_BACKUP_DRILL_SAMPLE: z.coerce.number().int().min(1).max(100).default(2),
  // Where operational alerts (a failed restore drill) are mailed; unset: they are only logged.
  STRONGROOM_OPS_EMAIL: z.email().max(254).optional(),

  STRONGROOM_MAIL: mailUrl.default('outbox:'),
  STRONGROOM_MAIL_FROM: z.string().min(1).max(300).default('Strongroom <no-reply@strongroom.localhost>'),
  STRONGROOM_SMTP_USER: z.string().min(1).optional(),
  STRONGROOM_SMTP_PASSWORD: z.string().min(1).optional(),
  STRONGROOM_SMTP_REQUIRE_TLS: z.enum(['true', 'false']).optional(),

  STRONGROOM_MASTER_KEY: z.string().min(1).optional(),
  STRONGROOM_MASTER_KEY_FILE: z.string().min(1).optional(),
  STRONGROOM_PREVIOUS_MASTER_KEY: z.string().min(1).optional(),
  STRONGROOM_PREVIOUS_MASTER_KEY_FILE: z.string().min(1).optional(),

  STRONGROOM_AUDIT_SIGNING_KEY: z.string().min(1).optional(),
  STRONGROOM_AUDIT_SIGNING_KEY_FILE: z.string().min(1).optional(),
  STRONGROOM_AUDIT_CHECKPOINT_ENTRIES: z.coerce.number().int().min(1).max(1_000_000).default(1000),
  STRONGROOM_AUDIT_CHECKPOINT_MINUTES: z.coerce.number().int().min(1).max(1440).default(10),
  STRONGROOM_AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(365),

  STRONGROOM_MIGRATE_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(50),
  STRONGROOM_MIGRATE_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  STRONGROOM_MIGRATE_CANARY_SIZE: z.coerce.number().int().min(0).max(10_000).default(5),
});

/**
 * Variables whose value may instead come from the file named by `<VAR>_FILE`. (The master keys have
 * their own `_FILE` variables in the schema: the key provider reads, and may generate, that file.)
 */
const fileSecrets = [
  'STRONGROOM_S3_SECRET_ACCESS_KEY',
  'DATABASE_URL',
  'STRONGROOM_SMTP_PASSWORD',
  'STRONGROOM_BACKUP_CREDENTIALS',
] as const;

export type MasterKeySource =
  | { kind: 'value'; key: Secret<Buffer> }
  | { kind: 'file'; path: string; generateIfMissing: boolean };

export interface Config {
  server: {
    host: string;
    port: number;
    /** Plain-HTTP listener that only redirects pages to HTTPS; off unless set. */
    httpRedirectPort: number | undefined;
    /** Addresses of the load balancer that terminates TLS; when set the server itself speaks HTTP. */
    trustProxy: string[] | undefined;
    tls: { certFile: string; keyFile: string; generateIfMissing: boolean };
    bodyLimitBytes: number;
    shutdownGraceMs: number;
  };
  /** The largest record data, in bytes of JSON. */
  recordMaxBytes: number;
  /** The largest attachment, in bytes. */
  attachmentMaxBytes: number;
  /** How far back a point-in-time restore reaches; retired attachment versions are kept that long. */
  restoreWindowDays: number;
  /** What each tenant gets unless an operator set its own limits. */
  tenantLimits: {
    requestsPerSecond: number;
    concurrentRequests: number;
    maxRecords: number;
    maxStorageBytes: number;
  };
  supportAccess: { maxGrantMs: number; pendingMs: number; breakGlass: boolean };
  log: { level: string };
  dataDir: string;
  database:
    | { kind: 'pglite'; dataDir: string; statementTimeoutMs: number; roles: 'auto' | 'on' | 'off' }
    | {
        kind: 'postgres';
        url: Secret<string>;
        poolSize: number;
        statementTimeoutMs: number;
        roles: 'auto' | 'on' | 'off';
      };
  objects:
    | { kind: 'fs'; rootDir: string }
    | {
        kind: 's3';
        url: string;
        credentials: { accessKeyId: string; secretAccessKey: Secret<string> } | undefined;
      };
  cache: { url: string };
  mail:
    | { kind: 'outbox'; dir: string; from: string }
    | {
        kind: 'smtp';
        url: string;
        from: string;
        auth: { user: string; pass: Secret<string> } | undefined;
        requireTls: boolean | undefined;
      };
  keys: { master: MasterKeySource; previousMaster: Secret<Buffer> | undefined };
  /**
   * The audit log: the Ed25519 checkpoint signing key (its 32-byte seed, kept like the master key:
   * value, `_FILE`, or a 0600 file generated in the data folder) and how often checkpoints are made.
   */
  audit: {
    signingKey: MasterKeySource;
    checkpointEveryEntries: number;
    checkpointIntervalMs: number;
    /** Default retention; a tenant may set its own, never below the restore window. */
    retentionDays: number;
  };
  backup: {
    /** Two or more independent places every backup file is written to (each an object store). */
    locations: BackupLocationConfig[];
    /** True when nothing was configured: two folders under the data folder, one failure domain. */
    isEmbeddedDefault: boolean;
    /** How often the journal is shipped (the RPO is about this plus one upload). */
    shipIntervalMs: number;
    /** How often each tenant gets a fresh snapshot. */
    snapshotIntervalMs: number;
    /** How often a restore drill runs, and how many tenants it restores. */
    drillIntervalMs: number;
    drillSample: number;
    /** Where a failed drill is mailed (unset: logged only). */
    opsEmail: string | undefined;
  };
  migrate: { batchSize: number; concurrency: number; canarySize: number };
}

/** One backup location: a name (in manifests, status and `--from`) and the object store behind it. */
export type BackupLocationConfig = { name: string } & Config['objects'];

export class ConfigError extends Error {
  readonly problems: string[];

  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface LoadConfigOptions {
  /** Reads a `*_FILE` secret; injectable so `loadConfig` stays testable without a disk. */
  readSecretFile?: (path: string) => string;
  /** Base for relative paths (default: the process's working directory). */
  cwd?: string;
}

/**
 * Validates the environment and returns the typed config, or throws a ConfigError that lists every
 * problem. Secrets are wrapped in `Secret` so they redact themselves if ever logged.
 */
export function loadConfig(env: Record<string, string | undefined>, options: LoadConfigOptions = {}): Config {
  const readSecretFile = options.readSecretFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const cwd = options.cwd ?? process.cwd();
  const problems: string[] = [];

  const merged: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && value !== '') merged[name] = value;
  }
  for (const name of fileSecrets) {
    const filePath = merged[`${name}_FILE`];
    if (filePath === undefined) continue;
    if (merged[name] !== undefined) {
      problems.push(`${name} and ${name}_FILE are both set; use one`);
      continue;
    }
    try {
      merged[name] = readSecretFile(resolve(cwd, filePath)).trim();
    } catch (error) {
      problems.push(
        `${name}_FILE: cannot read ${filePath} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }

  const parsed = envSchema.safeParse(merged);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      // Name the variable and the rule, never echo the value: it may be a secret.
      problems.push(`${issue.path.join('.')}: ${issue.message}`);
    }
  }
  // Checks on raw values run even when the schema failed, so one run reports every problem.
  checkRawValues(merged, problems);
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;

  const dataDir = resolve(cwd, e.STRONGROOM_DATA_DIR);

  if (e.STRONGROOM_HTTP_PORT !== undefined && e.STRONGROOM_HTTP_PORT === e.STRONGROOM_PORT) {
    problems.push('STRONGROOM_HTTP_PORT must differ from STRONGROOM_PORT');
  }

  let master: MasterKeySource;
  if (e.STRONGROOM_MASTER_KEY !== undefined) {
    master = { kind: 'value', key: new Secret(decodeMasterKey(e.STRONGROOM_MASTER_KEY) ?? Buffer.alloc(0)) };
  } else if (e.STRONGROOM_MASTER_KEY_FILE !== undefined) {
    master = { kind: 'file', path: resolve(cwd, e.STRONGROOM_MASTER_KEY_FILE), generateIfMissing: false };
  } else {
    // Embedded default: a key file in the data folder, generated on first start (mode 0600).
    master = { kind: 'file', path: resolve(dataDir, 'master.key'), generateIfMissing: true };
  }

  let signingKey: MasterKeySource;
  if (e.STRONGROOM_AUDIT_SIGNING_KEY !== undefined) {
    const seed = decodeMasterKey(e.STRONGROOM_AUDIT_SIGNING_KEY);
    if (!seed) problems.push('STRONGROOM_AUDIT_SIGNING_KEY: must be 32 bytes as 64 hex characters or base64');
    signingKey = { kind: 'value', key: new Secret(seed ?? Buffer.alloc(0)) };
  } else if (e.STRONGROOM_AUDIT_SIGNING_KEY_FILE !== undefined) {
    signingKey = {
      kind: 'file',
      path: resolve(cwd, e.STRONGROOM_AUDIT_SIGNING_KEY_FILE),
      generateIfMissing: false,
    };
  } else {
    signingKey = { kind: 'file', path: resolve(dataDir, 'audit-signing.key'), generateIfMissing: true };
  }

  let previousMaster: Secret<Buffer> | undefined;
  const previousRaw =
    e.STRONGROOM_PREVIOUS_MASTER_KEY ??
    readOptionalKeyFile(e.STRONGROOM_PREVIOUS_MASTER_KEY_FILE, cwd, readSecretFile, problems);
  if (previousRaw !== undefined) {
    const key = decodeMasterKey(previousRaw);
    if (!key)
      problems.push('STRONGROOM_PREVIOUS_MASTER_KEY: must be 32 bytes as 64 hex characters or base64');
    else previousMaster = new Secret(key);
  }

  let objects: Config['objects'];
  const objectsSetting = e.STRONGROOM_OBJECTS ?? `file://${resolve(dataDir, 'objects')}`;
  if (objectsSetting.startsWith('file://')) {
    objects = {
      kind: 'fs',
      rootDir: resolve(cwd, decodeURIComponent(objectsSetting.slice('file://'.length))),
    };
  } else {
    const hasId = e.STRONGROOM_S3_ACCESS_KEY_ID !== undefined;
    const hasSecret = e.STRONGROOM_S3_SECRET_ACCESS_KEY !== undefined;
    objects = {
      kind: 's3',
      url: objectsSetting,
      credentials:
        hasId && hasSecret
          ? {
              accessKeyId: e.STRONGROOM_S3_ACCESS_KEY_ID!,
              secretAccessKey: new Secret(e.STRONGROOM_S3_SECRET_ACCESS_KEY!),
            }
          : undefined,
    };
  }

  const backupLocations = parseBackupLocations(
    e.STRONGROOM_BACKUP_LOCATIONS ??
      `primary=file://${resolve(dataDir, 'backups', 'primary')},secondary=file://${resolve(dataDir, 'backups', 'secondary')}`,
    e.STRONGROOM_BACKUP_CREDENTIALS,
    cwd,
    problems,
  );

  if (problems.length > 0) throw new ConfigError(problems);

  return {
    server: {
      host: e.STRONGROOM_HOST,
      port: e.STRONGROOM_PORT,
      httpRedirectPort: e.STRONGROOM_HTTP_PORT,
      trustProxy: e.STRONGROOM_TRUST_PROXY,
      tls:
        e.STRONGROOM_TLS_CERT_FILE && e.STRONGROOM_TLS_KEY_FILE
          ? {
              certFile: resolve(cwd, e.STRONGROOM_TLS_CERT_FILE),
              keyFile: resolve(cwd, e.STRONGROOM_TLS_KEY_FILE),
              generateIfMissing: false,
            }
          : {
              certFile: resolve(dataDir, 'tls', 'localhost.crt'),
              keyFile: resolve(dataDir, 'tls', 'localhost.key'),
              generateIfMissing: true,
            },
      bodyLimitBytes: e.STRONGROOM_BODY_LIMIT_BYTES,
      shutdownGraceMs: e.STRONGROOM_SHUTDOWN_GRACE_MS,
    },
    log: { level: e.STRONGROOM_LOG_LEVEL },
    recordMaxBytes: e.STRONGROOM_RECORD_MAX_BYTES,
    attachmentMaxBytes: e.STRONGROOM_ATTACHMENT_MAX_BYTES,
    restoreWindowDays: e.STRONGROOM_RESTORE_WINDOW_DAYS,
    supportAccess: {
      maxGrantMs: e.STRONGROOM_SUPPORT_GRANT_MAX_HOURS * 3600_000,
      pendingMs: e.STRONGROOM_SUPPORT_REQUEST_EXPIRY_HOURS * 3600_000,
      breakGlass: e.STRONGROOM_BREAK_GLASS === 'on',
    },
    tenantLimits: {
      requestsPerSecond: e.STRONGROOM_TENANT_REQUESTS_PER_SECOND,
      concurrentRequests: e.STRONGROOM_TENANT_CONCURRENT_REQUESTS,
      maxRecords: e.STRONGROOM_TENANT_MAX_RECORDS,
      maxStorageBytes: e.STRONGROOM_TENANT_MAX_STORAGE_BYTES,
    },
    dataDir,
    database: e.DATABASE_URL
      ? {
          kind: 'postgres',
          url: new Secret(e.DATABASE_URL),
          poolSize: e.STRONGROOM_DB_POOL_SIZE,
          statementTimeoutMs: e.STRONGROOM_DB_STATEMENT_TIMEOUT_MS,
          roles: e.STRONGROOM_DB_ROLES,
        }
      : {
          kind: 'pglite',
          dataDir: resolve(dataDir, 'pglite'),
          statementTimeoutMs: e.STRONGROOM_DB_STATEMENT_TIMEOUT_MS,
          roles: e.STRONGROOM_DB_ROLES,
        },
    objects,
    cache: { url: e.STRONGROOM_CACHE },
    mail:
      e.STRONGROOM_MAIL === 'outbox:'
        ? { kind: 'outbox', dir: resolve(dataDir, 'outbox'), from: e.STRONGROOM_MAIL_FROM }
        : {
            kind: 'smtp',
            url: e.STRONGROOM_MAIL,
            from: e.STRONGROOM_MAIL_FROM,
            auth:
              e.STRONGROOM_SMTP_USER === undefined
                ? undefined
                : { user: e.STRONGROOM_SMTP_USER, pass: new Secret(e.STRONGROOM_SMTP_PASSWORD ?? '') },
            requireTls:
              e.STRONGROOM_SMTP_REQUIRE_TLS === undefined
                ? undefined
                : e.STRONGROOM_SMTP_REQUIRE_TLS === 'true',
          },
    keys: { master, previousMaster },
    audit: {
      signingKey,
      checkpointEveryEntries: e.STRONGROOM_AUDIT_CHECKPOINT_ENTRIES,
      checkpointIntervalMs: e.STRONGROOM_AUDIT_CHECKPOINT_MINUTES * 60_000,
      retentionDays: e.STRONGROOM_AUDIT_RETENTION_DAYS,
    },
    backup: {
      locations: backupLocations,
      isEmbeddedDefault: e.STRONGROOM_BACKUP_LOCATIONS === undefined,
      shipIntervalMs: e.STRONGROOM_BACKUP_SHIP_INTERVAL_MS,
      snapshotIntervalMs: e.STRONGROOM_BACKUP_SNAPSHOT_INTERVAL_HOURS * 3600_000,
      drillIntervalMs: e.STRONGROOM_BACKUP_DRILL_INTERVAL_HOURS * 3600_000,
      drillSample: e.STRONGROOM_BACKUP_DRILL_SAMPLE,
      opsEmail: e.STRONGROOM_OPS_EMAIL,
    },
    migrate: {
      batchSize: e.STRONGROOM_MIGRATE_BATCH_SIZE,
      concurrency: e.STRONGROOM_MIGRATE_CONCURRENCY,
      canarySize: e.STRONGROOM_MIGRATE_CANARY_SIZE,
    },
  };
}

const locationNamePattern = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * `STRONGROOM_BACKUP_LOCATIONS`: comma-separated `name=url` entries, at least two, e.g.
 * `onsite=file:///srv/backups,offsite=s3://sr-backups?endpoint=https://s3.example.net&region=eu-west-1`.
 * Credentials of S3 locations come from `STRONGROOM_BACKUP_CREDENTIALS` (or its `_FILE`), a JSON
 * object by location name: `{"offsite":{"accessKeyId":"…","secretAccessKey":"…"}}`; a location
 * without an entry uses the SDK's default chain. Problems name the variable and location, never a value.
 */
function parseBackupLocations(
  setting: string,
  credentialsJson: string | undefined,
  cwd: string,
  problems: string[],
): BackupLocationConfig[] {
  let credentials: Record<string, { accessKeyId?: unknown; secretAccessKey?: unknown }> = {};
  if (credentialsJson !== undefined) {
    try {
      const parsed: unknown = JSON.parse(credentialsJson);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      credentials = parsed as typeof credentials;
    } catch {
      problems.push(
        'STRONGROOM_BACKUP_CREDENTIALS: must be a JSON object {"<location>":{"accessKeyId":"…","secretAccessKey":"…"}}',
      );
    }
  }
  const locations: BackupLocationConfig[] = [];
  const entries = setting
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of entries) {
    const at = entry.indexOf('=');
    const name = at > 0 ? entry.slice(0, at) : '';
    const url = at > 0 ? entry.slice(at + 1) : '';
    if (!locationNamePattern.test(name)) {
      problems.push(
        'STRONGROOM_BACKUP_LOCATIONS: each entry must be name=url with a name of [a-z][a-z0-9-]*',
      );
      continue;
    }
    if (locations.some((l) => l.name === name)) {
      problems.push(`STRONGROOM_BACKUP_LOCATIONS: location ${name} is listed twice`);
      continue;
    }
    if (url.startsWith('file://')) {
      locations.push({
        name,
        kind: 'fs',
        rootDir: resolve(cwd, decodeURIComponent(url.slice('file://'.length))),
      });
    } else if (url.startsWith('s3://')) {
      if (/^s3:\/\/[^/?]*@/.test(url)) {
        problems.push(
          `STRONGROOM_BACKUP_LOCATIONS: location ${name}: put credentials in STRONGROOM_BACKUP_CREDENTIALS, not in the URL`,
        );
        continue;
      }
      const given = credentials[name];
      const isComplete = typeof given?.accessKeyId === 'string' && typeof given.secretAccessKey === 'string';
      if (given !== undefined && !isComplete) {
        problems.push(
          `STRONGROOM_BACKUP_CREDENTIALS: location ${name} needs both accessKeyId and secretAccessKey`,
        );
      }
      locations.push({
        name,
        kind: 's3',
        url,
        credentials: isComplete
          ? {
              accessKeyId: given.accessKeyId as string,
              secretAccessKey: new Secret(given.secretAccessKey as string),
            }
          : undefined,
      });
    } else {
      problems.push(
        `STRONGROOM_BACKUP_LOCATIONS: location ${name} must be file://<folder> or s3://<bucket>?…`,
      );
    }
  }
  for (const name of Object.keys(credentials)) {
    if (!locations.some((l) => l.name === name && l.kind === 's3')) {
      problems.push(
        `STRONGROOM_BACKUP_CREDENTIALS: ${name} is not an S3 location of STRONGROOM_BACKUP_LOCATIONS`,
      );
    }
  }
  if (entries.length < 2) {
    problems.push('STRONGROOM_BACKUP_LOCATIONS: list at least two locations (name=url,name=url)');
  }
  const targets = locations.map((l) => (l.kind === 'fs' ? l.rootDir : l.url));
  if (new Set(targets).size !== targets.length) {
    problems.push('STRONGROOM_BACKUP_LOCATIONS: two locations name the same place');
  }
  return locations;
}

/** Rules between variables, checked on the raw strings so they report even if the schema failed. */
function checkRawValues(raw: Record<string, string | undefined>, problems: string[]): void {
  const both = (a: string, b: string) => (raw[a] === undefined) !== (raw[b] === undefined);
  if (both('STRONGROOM_TLS_CERT_FILE', 'STRONGROOM_TLS_KEY_FILE')) {
    problems.push('STRONGROOM_TLS_CERT_FILE and STRONGROOM_TLS_KEY_FILE must be set together');
  }
  const retention = Number(raw.STRONGROOM_AUDIT_RETENTION_DAYS ?? 365);
  const restoreWindow = Number(raw.STRONGROOM_RESTORE_WINDOW_DAYS ?? 7);
  if (Number.isFinite(retention) && Number.isFinite(restoreWindow) && retention < restoreWindow) {
    problems.push('STRONGROOM_AUDIT_RETENTION_DAYS must not be shorter than STRONGROOM_RESTORE_WINDOW_DAYS');
  }
  if (raw.STRONGROOM_AUDIT_SIGNING_KEY !== undefined && raw.STRONGROOM_AUDIT_SIGNING_KEY_FILE !== undefined) {
    problems.push('STRONGROOM_AUDIT_SIGNING_KEY and STRONGROOM_AUDIT_SIGNING_KEY_FILE are both set; use one');
  }
  if (raw.STRONGROOM_MASTER_KEY !== undefined && raw.STRONGROOM_MASTER_KEY_FILE !== undefined) {
    problems.push('STRONGROOM_MASTER_KEY and STRONGROOM_MASTER_KEY_FILE are both set; use one');
  }
  if (raw.STRONGROOM_MASTER_KEY !== undefined && !decodeMasterKey(raw.STRONGROOM_MASTER_KEY)) {
    problems.push('STRONGROOM_MASTER_KEY: must be 32 bytes as 64 hex characters or base64');
  }
  if (
    raw.STRONGROOM_PREVIOUS_MASTER_KEY !== undefined &&
    raw.STRONGROOM_PREVIOUS_MASTER_KEY_FILE !== undefined
  ) {
    problems.push(
      'STRONGROOM_PREVIOUS_MASTER_KEY and STRONGROOM_PREVIOUS_MASTER_KEY_FILE are both set; use one',
    );
  }
  if (
    both('STRONGROOM_SMTP_USER', 'STRONGROOM_SMTP_PASSWORD') &&
    raw.STRONGROOM_SMTP_PASSWORD_FILE === undefined
  ) {
    problems.push('STRONGROOM_SMTP_USER and STRONGROOM_SMTP_PASSWORD must be set together');
  }
  if ((raw.STRONGROOM_MAIL ?? 'outbox:') === 'outbox:' && raw.STRONGROOM_SMTP_USER !== undefined) {
    problems.push(
      'STRONGROOM_SMTP_USER is set but STRONGROOM_MAIL is the outbox; set STRONGROOM_MAIL=smtp://…',
    );
  }
  if (raw.STRONGROOM_OBJECTS?.startsWith('s3://')) {
    if (both('STRONGROOM_S3_ACCESS_KEY_ID', 'STRONGROOM_S3_SECRET_ACCESS_KEY')) {
      problems.push('STRONGROOM_S3_ACCESS_KEY_ID and STRONGROOM_S3_SECRET_ACCESS_KEY must be set together');
    }
    if (/^s3:\/\/[^/?]*@/.test(raw.STRONGROOM_OBJECTS)) {
      problems.push(
        'STRONGROOM_OBJECTS: put credentials in STRONGROOM_S3_ACCESS_KEY_ID/SECRET, not in the URL',
      );
    }
  }
}

function readOptionalKeyFile(
  path: string | undefined,
  cwd: string,
  readSecretFile: (path: string) => string,
  problems: string[],
): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readSecretFile(resolve(cwd, path)).trim();
  } catch (error) {
    problems.push(
      `STRONGROOM_PREVIOUS_MASTER_KEY_FILE: cannot read ${path} (${(error as NodeJS.ErrnoException).code})`,
    );
    return undefined;
  }
}

/** A master key is exactly 32 bytes (AES-256), written as 64 hex characters or as base64. */
export function decodeMasterKey(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]{42,44}={0,2}$/.test(trimmed)) {
    const bytes = Buffer.from(trimmed, 'base64');
    if (bytes.length === 32) return bytes;
  }
  return undefined;
}

/** Every variable the schema knows, for `.env.example` and `strongroom config --help`. */
export function listConfigVariables(): string[] {
  return [...new Set([...Object.keys(envSchema.shape), ...fileSecrets.map((name) => `${name}_FILE`)])].sort();
}
