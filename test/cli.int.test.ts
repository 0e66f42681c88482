import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTimeOrderedId } from '../src/platform/ids.ts';
import { runCli, tempDataDir } from './support/cli.ts';
import { findService } from './support/services.ts';

/**
 * The CLI as a person runs it: a real process, real files, exit codes and messages. Each test runs
 * several commands, each a process opening the embedded database (a few seconds each on a loaded
 * two-core machine), so a test gets more than the suite's default minute.
 */
describe('strongroom CLI on the embedded defaults', { timeout: 180_000 }, () => {
  const dataDir = tempDataDir();
  const env = { STRONGROOM_DATA_DIR: dataDir };

  it('explains itself with --help everywhere', async () => {
    const top = await runCli(['--help'], env);
    expect(top.code).toBe(0);
    for (const command of ['serve', 'migrate', 'tenant', 'staff', 'keys', 'attachments', 'config'])
      expect(top.stdout).toContain(command);
    const create = await runCli(['tenant', 'create', '--help'], env);
    expect(create.code).toBe(0);
    expect(create.stdout).toMatch(/--slug <slug>[\s\S]*--owner-email <email>/);
    const unknown = await runCli(['tenant', 'frobnicate'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
  });

  it('generates the master key once (0600, announced) and runs the tenant lifecycle', async () => {
    const created = await runCli(
      ['tenant', 'create', '--slug', 'acme', '--name', 'Acme', '--owner-email', 'a@acme.test'],
      env,
    );
    expect(created.stderr).toContain('generated a new master key');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/created tenant acme \([0-9a-f-]{36}\)/);
    expect(created.stdout).toMatch(/^\s+srs_[A-Za-z0-9_-]{43}$/m);
    const keyFile = join(dataDir, 'master.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const key = readFileSync(keyFile, 'utf8').trim();
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(created.stdout + created.stderr).not.toContain(key);

    const listed = await runCli(['tenant', 'list', '--json'], env);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).map((t: { slug: string }) => t.slug)).toEqual(['acme']);
    expect(listed.stderr).not.toContain('generated a new master key');

    expect((await runCli(['tenant', 'suspend', 'acme'], env)).stdout).toContain('acme is now suspended');
    expect((await runCli(['tenant', 'resume', 'acme'], env)).stdout).toContain('acme is now active');

    const unconfirmed = await runCli(['tenant', 'delete', 'acme'], env);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain('error [confirmation_required]');
    const deleted = await runCli(['tenant', 'delete', 'acme', '--confirm', 'acme'], env);
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toContain('data key is destroyed');
    expect((await runCli(['tenant', 'show', 'acme'], env)).code).toBe(4);
  });

  it('sweeps orphaned attachment objects and cut-off uploads older than the grace period, with a summary', async () => {
    const created = await runCli(
      ['tenant', 'create', '--slug', 'files', '--name', 'Files', '--owner-email', 'o@files.test', '--json'],
      env,
    );
    expect(created.code).toBe(0);
    const tenantId = JSON.parse(created.stdout).tenant.id as string;
    // What a crash between the object write and the commit leaves: an object no version knows.
    const folder = join(dataDir, 'objects', 'tenants', tenantId, 'attachments');
    mkdirSync(folder, { recursive: true });
    const old = join(folder, newTimeOrderedId(Date.now() - 2 * 3600_000));
    const fresh = join(folder, newTimeOrderedId());
    writeFileSync(old, 'orphan');
    writeFileSync(fresh, 'an upload still committing');
    // What a crash mid-stream leaves: a temp file no key names; one still being written stays.
    const temps = join(dataDir, 'objects', '.tmp');
    const cutOff = join(temps, 'cut-off-upload');
    const writing = join(temps, 'upload-in-progress');
    writeFileSync(cutOff, 'half an upload');
    writeFileSync(writing, 'an upload still streaming');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(cutOff, twoHoursAgo, twoHoursAgo);
    const result = await runCli(['attachments', 'maintain', '--json'], env);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      purged: 0,
      orphansSwept: 1,
      incompleteSwept: 1,
      idempotencyKeysPruned: 0,
      failures: [],
    });
    expect(existsSync(old)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(cutOff)).toBe(false);
    expect(existsSync(writing)).toBe(true);
    const text = await runCli(['attachments', 'maintain'], env);
    expect(text.stdout).toMatch(
      /\d+ tenants: 0 retired versions purged, 0 orphaned objects swept, 0 cut-off uploads removed, 0 expired idempotency keys forgotten/,
    );
  });

  it('rejects a hostile slug with a precise error and exit code 2', async () => {
    for (const slug of ['../x', 'public', 'pg_catalog', 'x'.repeat(64), 'a"b']) {
      const result = await runCli(
        ['tenant', 'create', '--slug', slug, '--name', 'X', '--owner-email', 'o@x.test'],
        env,
      );
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^error \[invalid_slug\]: invalid slug: /m);
    }
  });

  it('creates staff with a one-time setup token (no key before MFA), and resets a lost authenticator', async () => {
    const result = await runCli(
      ['staff', 'create', '--email', 'ops@p.test', '--name', 'Ops', '--role', 'operator'],
      env,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^\s+srs_[A-Za-z0-9_-]{43}$/m);
    expect(result.stdout).not.toMatch(/sro_/);
    const reset = await runCli(['staff', 'reset-mfa', 'OPS@p.test'], env);
    expect(reset.code).toBe(0);
    expect(reset.stdout).toMatch(/^reset operator ops@p\.test/m);
    expect(reset.stdout).toMatch(/^\s+srs_[A-Za-z0-9_-]{43}$/m);
    expect((await runCli(['staff', 'reset-mfa', 'nobody@p.test'], env)).stderr).toContain(
      'error [staff_not_found]',
    );
    const bad = await runCli(
      ['staff', 'create', '--email', 'x@p.test', '--name', 'X', '--role', 'root'],
      env,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('error [invalid_staff_role]');
  });

  it("disables a staff member, and lists a tenant's accounts without secrets", async () => {
    await runCli(['staff', 'create', '--email', 'temp@p.test', '--name', 'Temp', '--role', 'support'], env);
    expect((await runCli(['staff', 'disable', 'Temp@p.test'], env)).stdout).toContain('disabled temp@p.test');
    const staff = JSON.parse((await runCli(['staff', 'list', '--json'], env)).stdout);
    expect(staff.find((m: { email: string }) => m.email === 'temp@p.test').status).toBe('disabled');
    expect((await runCli(['staff', 'disable', 'nobody@p.test'], env)).stderr).toContain(
      'error [staff_not_found]',
    );

    await runCli(
      ['tenant', 'create', '--slug', 'listed', '--name', 'L', '--owner-email', 'o@listed.test'],
      env,
    );
    const empty = await runCli(['user', 'list', '--tenant', 'listed'], env);
    expect(empty.code).toBe(0);
    expect(empty.stdout).toContain('no accounts yet');
    const missing = await runCli(['user', 'list', '--tenant', 'no-such-tenant'], env);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain('error [tenant_not_found]');
  });

  it('refuses a master key that is not the one the database was set up with, changing nothing', async () => {
    const wrong = await runCli(['tenant', 'list'], {
      ...env,
      STRONGROOM_MASTER_KEY: randomBytes(32).toString('hex'),
    });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(
      /error \[master_key_mismatch\]: the configured master key \(local:[0-9a-f]{16}\) is not the one/,
    );
    expect((await runCli(['tenant', 'list'], env)).code).toBe(0);
  });

  it('lists every configuration problem at once, without echoing values', async () => {
    const result = await runCli(['tenant', 'list'], {
      ...env,
      STRONGROOM_PORT: 'eighty',
      STRONGROOM_CACHE: 'ftp://cache',
      STRONGROOM_MASTER_KEY: 'too-short-secret',
    });
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('error [invalid_config]');
    expect(result.stderr).toContain('STRONGROOM_PORT');
    expect(result.stderr).toContain('STRONGROOM_CACHE');
    expect(result.stderr).toContain('STRONGROOM_MASTER_KEY');
    expect(result.stderr).not.toContain('too-short-secret');
  });

  it('names an unreachable database without leaking its password', async () => {
    const result = await runCli(['tenant', 'list'], {
      ...env,
      DATABASE_URL: 'postgres://app:s3kr1t@127.0.0.1:1/strongroom',
    });
    expect(result.code).toBe(7);
    expect(result.stderr).toContain(
      'error [database_unreachable]: the database at 127.0.0.1:1/strongroom cannot be reached',
    );
    expect(result.stderr).not.toContain('s3kr1t');
  });
});

const postgres = await findService('postgres');
describe.skipIf(postgres.skipReason)(`strongroom migrate on a Postgres server${postgres.skipReason}`, () => {
  let admin: Kysely<unknown>;
  let url: string;
  const name = `sr_cli_${randomBytes(5).toString('hex')}`;
  const env = () => ({
    DATABASE_URL: url,
    STRONGROOM_MASTER_KEY: masterKey,
    STRONGROOM_DATA_DIR: tempDataDir(),
  });
  const masterKey = randomBytes(32).toString('hex');

  beforeAll(async () => {
    admin = new Kysely({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: postgres.url, max: 1 }) }),
    });
    await sql`create database ${sql.id(name)}`.execute(admin);
    const parsed = new URL(postgres.url!);
    parsed.pathname = `/${name}`;
    url = parsed.toString();
  });
  afterAll(async () => {
    await sql`drop database if exists ${sql.id(name)} with (force)`.execute(admin);
    // Roles are cluster-wide: drop the ones our tenants got, and only those.
    for (const role of createdRoles) await sql`drop role if exists ${sql.id(role)}`.execute(admin);
    await admin.destroy();
  });
  const createdRoles = new Set<string>();

  it('migrates the control plane and every tenant, then finds nothing to do', async () => {
    for (const slug of ['one', 'two', 'three']) {
      const created = await runCli(
        ['tenant', 'create', '--slug', slug, '--name', slug, '--owner-email', `o@${slug}.test`, '--json'],
        env(),
      );
      expect(created.code).toBe(0);
      createdRoles.add(`t_${JSON.parse(created.stdout).tenant.id.replaceAll('-', '')}`);
    }
    const result = await runCli(['migrate', '--json'], env());
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      status: 'succeeded',
      total: 0,
      migrated: 0,
      failed: 0,
    });
    const text = await runCli(['migrate'], env());
    expect(text.stdout).toContain('control plane up to date; tenants: 0 migrated, 0 failed');
    const bad = await runCli(['migrate', '--concurrency', '0'], env());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--concurrency must be a whole number of at least 1');
  });
});
