import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

const base = { STRONGROOM_MASTER_KEY: 'a'.repeat(64) };

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig({ ...base, ...env }, { cwd: '/srv/app', readSecretFile: () => '' });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('STRONGROOM_BACKUP_LOCATIONS', () => {
  it('defaults to two folders under the data folder, flagged as one failure domain', () => {
    const config = loadConfig(base, { cwd: '/srv/app' });
    expect(config.backup.isEmbeddedDefault).toBe(true);
    expect(config.backup.locations).toEqual([
      { name: 'primary', kind: 'fs', rootDir: '/srv/app/.strongroom/backups/primary' },
      { name: 'secondary', kind: 'fs', rootDir: '/srv/app/.strongroom/backups/secondary' },
    ]);
    expect(config.backup.shipIntervalMs).toBe(2_000);
    expect(config.backup.snapshotIntervalMs).toBe(24 * 3600_000);
  });

  it('reads a folder and an S3 bucket, with the bucket credentials from a _FILE secret', () => {
    const config = loadConfig(
      {
        ...base,
        STRONGROOM_BACKUP_LOCATIONS:
          'onsite=file:///var/backups/sr, offsite=s3://sr-backups?endpoint=http://127.0.0.1:9000&region=eu-west-1&forcePathStyle=true',
        STRONGROOM_BACKUP_CREDENTIALS_FILE: '/run/secrets/backup',
      },
      {
        cwd: '/srv/app',
        readSecretFile: () => '{"offsite":{"accessKeyId":"AKID","secretAccessKey":"very-secret"}}',
      },
    );
    expect(config.backup.isEmbeddedDefault).toBe(false);
    const [onsite, offsite] = config.backup.locations;
    expect(onsite).toEqual({ name: 'onsite', kind: 'fs', rootDir: '/var/backups/sr' });
    expect(offsite).toMatchObject({ name: 'offsite', kind: 's3', credentials: { accessKeyId: 'AKID' } });
    expect(JSON.stringify(config)).not.toContain('very-secret');
    if (offsite?.kind !== 's3') throw new Error('expected s3');
    expect(offsite.credentials?.secretAccessKey.reveal()).toBe('very-secret');
  });

  it('reports every problem at once, without echoing values', () => {
    const problems = problemsOf({
      STRONGROOM_BACKUP_LOCATIONS: 'only=file:///a,Bad Name=file:///b,x=ftp://c,y=s3://u:pw@bucket',
      STRONGROOM_BACKUP_CREDENTIALS: '{"nowhere":{"accessKeyId":"k","secretAccessKey":"s"}}',
    });
    expect(problems).toEqual([
      'STRONGROOM_BACKUP_LOCATIONS: each entry must be name=url with a name of [a-z][a-z0-9-]*',
      'STRONGROOM_BACKUP_LOCATIONS: location x must be file://<folder> or s3://<bucket>?…',
      'STRONGROOM_BACKUP_LOCATIONS: location y: put credentials in STRONGROOM_BACKUP_CREDENTIALS, not in the URL',
      'STRONGROOM_BACKUP_CREDENTIALS: nowhere is not an S3 location of STRONGROOM_BACKUP_LOCATIONS',
    ]);
    expect(problemsOf({ STRONGROOM_BACKUP_LOCATIONS: 'a=file:///x' })).toEqual([
      'STRONGROOM_BACKUP_LOCATIONS: list at least two locations (name=url,name=url)',
    ]);
    expect(problemsOf({ STRONGROOM_BACKUP_LOCATIONS: 'a=file:///x,b=file:///x' })).toEqual([
      'STRONGROOM_BACKUP_LOCATIONS: two locations name the same place',
    ]);
    expect(
      problemsOf({
        STRONGROOM_BACKUP_LOCATIONS: 'a=file:///x,b=file:///y',
        STRONGROOM_BACKUP_CREDENTIALS: 'nope',
      }),
    ).toEqual([
      'STRONGROOM_BACKUP_CREDENTIALS: must be a JSON object {"<location>":{"accessKeyId":"…","secretAccessKey":"…"}}',
    ]);
  });
});
