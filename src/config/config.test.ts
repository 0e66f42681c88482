import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, decodeMasterKey, listConfigVariables, loadConfig } from './config.ts';

const cwd = '/srv/app';
const noFiles = {
  cwd,
  readSecretFile: (path: string): string => {
    throw Object.assign(new Error(`no ${path}`), { code: 'ENOENT' });
  },
};
const hexKey = 'ab'.repeat(32);

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, noFiles);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('runs on embedded defaults when nothing is set', () => {
    const config = loadConfig({}, noFiles);
    expect(config.server).toMatchObject({
      host: '127.0.0.1',
      port: 8443,
      httpRedirectPort: undefined,
      trustProxy: undefined,
    });
    expect(config.server.tls).toEqual({
      certFile: '/srv/app/.strongroom/tls/localhost.crt',
      keyFile: '/srv/app/.strongroom/tls/localhost.key',
      generateIfMissing: true,
    });
    expect(config.database).toMatchObject({
      kind: 'pglite',
      dataDir: '/srv/app/.strongroom/pglite',
      roles: 'auto',
    });
    expect(config.objects).toEqual({ kind: 'fs', rootDir: '/srv/app/.strongroom/objects' });
    expect(config.cache.url).toBe('memory:');
    expect(config.keys.master).toEqual({
      kind: 'file',
      path: '/srv/app/.strongroom/master.key',
      generateIfMissing: true,
    });
  });

  it('keeps the audit signing key like the master key, and retention no shorter than the restore window', () => {
    expect(loadConfig({}, noFiles).audit).toEqual({
      signingKey: { kind: 'file', path: '/srv/app/.strongroom/audit-signing.key', generateIfMissing: true },
      checkpointEveryEntries: 1000,
      checkpointIntervalMs: 600_000,
      retentionDays: 365,
    });
    const seed = 'ab'.repeat(32);
    const fromEnv = loadConfig({ STRONGROOM_AUDIT_SIGNING_KEY: seed }, noFiles).audit.signingKey;
    expect(fromEnv.kind === 'value' && fromEnv.key.reveal().toString('hex')).toBe(seed);
    expect(JSON.stringify(loadConfig({ STRONGROOM_AUDIT_SIGNING_KEY: seed }, noFiles))).not.toContain(seed);
    expect(problemsOf({ STRONGROOM_AUDIT_SIGNING_KEY: 'short' })).toEqual([
      'STRONGROOM_AUDIT_SIGNING_KEY: must be 32 bytes as 64 hex characters or base64',
    ]);
    expect(problemsOf({ STRONGROOM_AUDIT_RETENTION_DAYS: '5', STRONGROOM_RESTORE_WINDOW_DAYS: '7' })).toEqual(
      ['STRONGROOM_AUDIT_RETENTION_DAYS must not be shorter than STRONGROOM_RESTORE_WINDOW_DAYS'],
    );
  });

  it('points at real servers by URL', () => {
    const config = loadConfig(
      {
        DATABASE_URL: 'postgres://app:pw@db:5432/strongroom',
        STRONGROOM_OBJECTS: 's3://bucket?endpoint=http://127.0.0.1:9000&region=eu-west-1&forcePathStyle=true',
        STRONGROOM_S3_ACCESS_KEY_ID: 'AKIA',
        STRONGROOM_S3_SECRET_ACCESS_KEY: 'shh',
        STRONGROOM_CACHE: 'redis://127.0.0.1:6379',
        STRONGROOM_MASTER_KEY: hexKey,
        STRONGROOM_TRUST_PROXY: '10.0.0.0/8, 192.168.1.7',
      },
      noFiles,
    );
    expect(config.database.kind).toBe('postgres');
    expect(config.objects.kind).toBe('s3');
    expect(config.cache.url).toBe('redis://127.0.0.1:6379');
    expect(config.keys.master.kind).toBe('value');
    expect(config.server.trustProxy).toEqual(['10.0.0.0/8', '192.168.1.7']);
  });

  it('reports every bad variable at once', () => {
    const problems = problemsOf({
      STRONGROOM_PORT: 'eighty',
      STRONGROOM_HTTP_PORT: '70000',
      STRONGROOM_CACHE: 'ftp://cache',
      DATABASE_URL: 'mysql://db',
      STRONGROOM_OBJECTS: 'gs://bucket',
      STRONGROOM_DB_ROLES: 'maybe',
      STRONGROOM_MASTER_KEY: 'short',
      STRONGROOM_TLS_CERT_FILE: '/only/cert.pem',
      STRONGROOM_TRUST_PROXY: 'not an ip',
    });
    for (const name of [
      'STRONGROOM_PORT',
      'STRONGROOM_HTTP_PORT',
      'STRONGROOM_CACHE',
      'DATABASE_URL',
      'STRONGROOM_OBJECTS',
      'STRONGROOM_DB_ROLES',
      'STRONGROOM_MASTER_KEY',
      'STRONGROOM_TLS_CERT_FILE',
      'STRONGROOM_TRUST_PROXY',
    ]) {
      expect(problems.some((p) => p.startsWith(name))).toBe(true);
    }
    expect(problems.find((p) => p.startsWith('STRONGROOM_PORT'))).toBe(
      'STRONGROOM_PORT: must be a port number (1-65535)',
    );
  });

  it('never echoes a value in a problem: it may be a secret', () => {
    const problems = problemsOf({
      DATABASE_URL: 'mysql://root:hunter2@db',
      STRONGROOM_MASTER_KEY: 'hunter2hunter2',
    });
    expect(problems.join('\n')).not.toContain('hunter2');
  });

  it('refuses a variable set both directly and as a file, and S3 credentials in the URL', () => {
    expect(problemsOf({ STRONGROOM_MASTER_KEY: hexKey, STRONGROOM_MASTER_KEY_FILE: '/k' })).toContain(
      'STRONGROOM_MASTER_KEY and STRONGROOM_MASTER_KEY_FILE are both set; use one',
    );
    expect(problemsOf({ DATABASE_URL: 'postgres://db/x', DATABASE_URL_FILE: '/run/secrets/db' })).toContain(
      'DATABASE_URL and DATABASE_URL_FILE are both set; use one',
    );
    expect(problemsOf({ STRONGROOM_OBJECTS: 's3://AKIA:secret@bucket' })).toContain(
      'STRONGROOM_OBJECTS: put credentials in STRONGROOM_S3_ACCESS_KEY_ID/SECRET, not in the URL',
    );
    expect(problemsOf({ STRONGROOM_OBJECTS: 's3://b', STRONGROOM_S3_ACCESS_KEY_ID: 'AKIA' })).toContain(
      'STRONGROOM_S3_ACCESS_KEY_ID and STRONGROOM_S3_SECRET_ACCESS_KEY must be set together',
    );
  });

  it('reads secrets from *_FILE and reports an unreadable one by name', () => {
    const files: Record<string, string> = { '/run/secrets/db': 'postgres://app:pw@db/x\n' };
    const config = loadConfig(
      { DATABASE_URL_FILE: '/run/secrets/db' },
      { cwd, readSecretFile: (path) => files[path] ?? noFiles.readSecretFile(path) },
    );
    expect(config.database.kind === 'postgres' && config.database.url.reveal()).toBe(
      'postgres://app:pw@db/x',
    );
    expect(problemsOf({ DATABASE_URL_FILE: '/missing' })).toEqual([
      'DATABASE_URL_FILE: cannot read /missing (ENOENT)',
    ]);
  });

  it('keeps secrets redacted in JSON, strings and inspection', () => {
    const config = loadConfig(
      { DATABASE_URL: 'postgres://app:pa55word@db/x', STRONGROOM_MASTER_KEY: hexKey },
      noFiles,
    );
    for (const rendered of [
      JSON.stringify(config),
      inspect(config, { depth: 10 }),
      String(config.keys.master),
    ]) {
      expect(rendered).not.toContain('pa55word');
      expect(rendered).not.toContain(hexKey);
      expect(rendered).not.toContain(Buffer.from(hexKey, 'hex').toString('base64'));
    }
  });

  it('lists every variable once', () => {
    const names = listConfigVariables();
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(
      expect.arrayContaining(['DATABASE_URL', 'DATABASE_URL_FILE', 'STRONGROOM_MASTER_KEY_FILE']),
    );
  });
});

describe('decodeMasterKey', () => {
  it('accepts 32 bytes as hex or base64, nothing else', () => {
    expect(decodeMasterKey(hexKey)).toHaveLength(32);
    expect(decodeMasterKey(Buffer.alloc(32, 7).toString('base64'))).toEqual(Buffer.alloc(32, 7));
    expect(decodeMasterKey(`${hexKey}\n`)).toHaveLength(32);
    expect(decodeMasterKey('ab'.repeat(31))).toBeUndefined();
    expect(decodeMasterKey(Buffer.alloc(31).toString('base64'))).toBeUndefined();
    expect(decodeMasterKey('not a key at all')).toBeUndefined();
  });
});
