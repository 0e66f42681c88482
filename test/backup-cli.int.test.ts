import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDataDir } from './support/cli.ts';
import { type TestDatabase, testDatabaseKinds } from './support/databases.ts';

/** Creates a tenant with an owner on the embedded defaults, snapshots everything and ships. */
async function tenantWithBackups(env: Record<string, string>, slug: string): Promise<void> {
  const created = await runCli(
    ['tenant', 'create', '--slug', slug, '--name', slug, '--owner-email', `o@${slug}.test`],
    env,
  );
  expect(created.code).toBe(0);
  const snapshot = await runCli(['backup', 'snapshot'], env);
  expect(snapshot.stderr).not.toMatch(/error/);
  expect(snapshot.code).toBe(0);
  expect((await runCli(['backup', 'ship'], env)).code).toBe(0);
}

/** Flips one byte in the middle of a file, as a failing disk would. */
function flipByte(file: string): void {
  const bytes = readFileSync(file);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] ?? 0) ^ 0xff;
  writeFileSync(file, bytes);
}

/** The backup commands as an operator runs them, on the embedded defaults (two folders). */
describe('strongroom backup and restore commands', () => {
  const dataDir = tempDataDir();
  const env = { STRONGROOM_DATA_DIR: dataDir };

  it('snapshots, ships, reports status, restores into a new tenant and verifies', async () => {
    const created = await runCli(
      ['tenant', 'create', '--slug', 'acme', '--name', 'Acme', '--owner-email', 'a@acme.test'],
      env,
    );
    expect(created.code).toBe(0);

    const snapshot = await runCli(['backup', 'snapshot', '--tenant', 'acme'], env);
    expect(snapshot.stderr).toBe('');
    expect(snapshot.code).toBe(0);
    expect(snapshot.stdout).toMatch(/snapshot [0-9a-f-]{36} at .*, in primary, secondary/);
    for (const location of ['primary', 'secondary']) {
      const tenants = readdirSync(join(dataDir, 'backups', location, 'tenants'));
      expect(tenants).toHaveLength(1);
    }

    const shipped = await runCli(['backup', 'ship'], env);
    expect(shipped.code).toBe(0);
    expect(shipped.stdout).toMatch(/^1 tenants: /);

    const status = await runCli(['backup', 'status', '--json'], env);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout);
    expect(parsed.locations).toEqual(['primary', 'secondary']);
    expect(parsed.tenants[0].slug).toBe('acme');
    expect(parsed.tenants[0].locations.map((l: { rpoMs: number }) => l.rpoMs)).toEqual([0, 0]);
    const table = await runCli(['backup', 'status'], env);
    expect(table.stdout).toMatch(
      /^TENANT\s+LOCATION\s+SNAPSHOT\s+SEGMENT\s+LAST CHANGE SHIPPED\s+PENDING\s+RPO/,
    );

    const at = new Date().toISOString();
    const restored = await runCli(
      ['restore', '--tenant', 'acme', '--at', at, '--into', 'acme-restored'],
      env,
    );
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain(`restored acme as of ${at} into new tenant acme-restored`);
    expect(restored.stderr).toMatch(/restoring \[.*\| ETA /);

    const early = await runCli(
      ['restore', '--tenant', 'acme', '--at', '2020-01-01T00:00:00Z', '--into', 'acme-early'],
      env,
    );
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(
      /error \[restore_time_outside_window\]: cannot restore to 2020-01-01T00:00:00.000Z: the backups cover .* to /,
    );
    const badTime = await runCli(
      ['restore', '--tenant', 'acme', '--at', 'yesterday', '--into', 'x-y-z'],
      env,
    );
    expect(badTime.code).toBe(2);

    const verified = await runCli(['backup', 'verify'], env);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/^primary: 2 tenants, \d+ files checked, 0 problems$/m);
    expect(verified.stdout).toMatch(/^secondary: 2 tenants, \d+ files checked, 0 problems$/m);
  }, 120_000);
});

describe('strongroom backup drill and backup drills', () => {
  const dataDir = tempDataDir();
  const env = { STRONGROOM_DATA_DIR: dataDir };

  it('drills a tenant from both locations, exits 8 once a location is corrupted, and lists the results', async () => {
    await tenantWithBackups(env, 'acme');
    const passed = await runCli(['backup', 'drill', '--tenant', 'acme', '--json'], env);
    expect(passed.stderr).toBe('');
    expect(passed.code).toBe(0);
    expect(JSON.parse(passed.stdout).map((r: { outcome: string }) => r.outcome)).toEqual(['passed']);

    const snapshots = join(dataDir, 'backups', 'secondary', 'tenants');
    const [tenantDir] = readdirSync(snapshots);
    const [snap] = readdirSync(join(snapshots, tenantDir!, 'snapshots')).filter((f) => f.endsWith('.snap'));
    flipByte(join(snapshots, tenantDir!, 'snapshots', snap!));
    const failed = await runCli(['backup', 'drill', '--tenant', 'acme'], env);
    expect(failed.code).toBe(8);
    expect(failed.stdout).toMatch(/^STARTED\s+TENANT\s+RESTORED TO\s+OUTCOME\s+MESSAGE/);
    expect(failed.stdout).toMatch(/failed\s+.*secondary/);

    const listed = await runCli(['backup', 'drills', '--json'], env);
    expect(listed.code).toBe(0);
    const drills = JSON.parse(listed.stdout) as Array<{ tenantId: string; outcome: string; message: string }>;
    // Newest first.
    expect(drills.map((d) => d.outcome)).toEqual(['failed', 'passed']);
    expect(drills.every((d) => d.tenantId === tenantDir)).toBe(true);
    expect(drills[0]!.message).toContain('secondary');
  }, 120_000);
});

const postgres = (await testDatabaseKinds()).find((k) => k.name === 'postgres')!;

describe.skipIf(postgres.skipReason)(
  `strongroom restore --all onto an empty Postgres${postgres.skipReason}`,
  () => {
    const dataDir = tempDataDir();
    let target: TestDatabase | undefined;
    afterAll(async () => target?.close());

    it('rebuilds the control plane and every tenant from one location, then serves its commands', async () => {
      const env = { STRONGROOM_DATA_DIR: dataDir };
      await tenantWithBackups(env, 'acme');
      await tenantWithBackups(env, 'globex');

      // The disaster: only the primary location and the master key survive.
      target = await postgres.open();
      const recoveryEnv = {
        STRONGROOM_DATA_DIR: tempDataDir(),
        DATABASE_URL: target.url!,
        STRONGROOM_MASTER_KEY_FILE: join(dataDir, 'master.key'),
        STRONGROOM_BACKUP_LOCATIONS: `primary=file://${join(dataDir, 'backups', 'primary')},fresh=file://${tempDataDir()}`,
      };
      const wrongKey = await runCli(['restore', '--all', '--from', 'primary'], {
        ...recoveryEnv,
        STRONGROOM_MASTER_KEY_FILE: join(recoveryEnv.STRONGROOM_DATA_DIR, 'no-such.key'),
      });
      expect(wrongKey.code).not.toBe(0);
      expect(wrongKey.stderr).not.toMatch(/\n\s+at /);

      // Refused before anything loads: no trace, not even its audit entry, where the recovered chain goes.
      const early = await runCli(['restore', '--all', '--from', 'nowhere'], recoveryEnv);
      expect([early.code, early.stderr]).toEqual([
        2,
        expect.stringContaining(
          'not audited: this database holds no platform yet, and the run changed nothing',
        ),
      ]);
      expect(early.stderr).toContain('backup_location_unknown');

      const recovered = await runCli(['restore', '--all', '--from', 'primary', '--json'], recoveryEnv);
      expect(recovered.stderr).not.toMatch(/error/);
      expect(recovered.code).toBe(0);
      const result = JSON.parse(recovered.stdout) as {
        location: string;
        tenants: Array<{ slug: string; outcome: string }>;
      };
      expect(result.location).toBe('primary');
      expect(result.tenants.map((t) => [t.slug, t.outcome]).sort()).toEqual([
        ['acme', 'restored'],
        ['globex', 'restored'],
      ]);

      // Run again (an interrupted recovery is re-run): nothing left to do.
      const again = await runCli(['restore', '--all', '--from', 'primary'], recoveryEnv);
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(/acme\s+\S+\s+already_restored/);

      const tenants = await runCli(['tenant', 'list', '--json'], recoveryEnv);
      expect(tenants.code).toBe(0);
      expect((JSON.parse(tenants.stdout) as Array<{ slug: string }>).map((t) => t.slug).sort()).toEqual([
        'acme',
        'globex',
      ]);
      const status = await runCli(['backup', 'status', '--json'], recoveryEnv);
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout).locations).toEqual(['primary', 'fresh']);

      // Refused once the platform is back: on the record like any run.
      const nowhere = await runCli(['restore', '--all', '--from', 'nowhere'], recoveryEnv);
      expect(nowhere.code).toBe(2);
      expect(nowhere.stderr).toContain('backup_location_unknown');

      // Each run is on the record, on the recovered platform chain, as the operator who ran it.
      const { rows } = await sql<Record<string, unknown>>`
        select actor_kind as "actorKind", actor_id as "actorId", resource_type as "resourceType",
          outcome, error_code as "errorCode", changes, user_agent as "userAgent"
        from control.audit_log where action = 'platform.recover' order by position`.execute(
        target.database.db,
      );
      const run = {
        actorKind: 'system',
        actorId: `cli:${userInfo().username}`,
        resourceType: 'tenants',
        changes: ['all', 'from'],
        userAgent: 'strongroom-cli',
      };
      expect(rows).toEqual([
        { ...run, outcome: 'allow', errorCode: null },
        { ...run, outcome: 'allow', errorCode: null },
        { ...run, outcome: 'error', errorCode: 'backup_location_unknown' },
      ]);
      const verified = await runCli(['audit', 'verify', '--platform'], recoveryEnv);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    }, 180_000);
  },
);

describe('strongroom restore --in-place, restore confirm and restore undo', () => {
  const dataDir = tempDataDir();
  const env = { STRONGROOM_DATA_DIR: dataDir };

  it('swaps a tenant in place, refuses another until confirmed or undone, and undoes and confirms', async () => {
    await tenantWithBackups(env, 'acme');
    const at = new Date().toISOString();
    const restored = await runCli(['restore', '--tenant', 'acme', '--at', at, '--in-place'], env);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain(`restored acme in place as of ${at}`);
    const again = await runCli(['restore', '--tenant', 'acme', '--at', at, '--in-place'], env);
    expect([again.code, again.stderr.trim()]).toEqual([
      5,
      'error [restore_unconfirmed]: acme was restored in place and its previous data is still kept: run `strongroom restore confirm --tenant acme` or `strongroom restore undo --tenant acme` first',
    ]);
    const mixed = await runCli(['restore', '--tenant', 'acme', '--at', at, '--in-place', '--into', 'x'], env);
    expect(mixed.code).toBe(2);

    expect((await runCli(['restore', 'undo', '--tenant', 'acme'], env)).code).toBe(0);
    const undoneTwice = await runCli(['restore', 'undo', '--tenant', 'acme'], env);
    expect([undoneTwice.code, undoneTwice.stderr]).toEqual([
      4,
      'error [restore_nothing_kept]: acme has no data kept from an in-place restore\n',
    ]);
    expect((await runCli(['restore', '--tenant', 'acme', '--at', at, '--in-place'], env)).code).toBe(0);
    const confirmed = await runCli(['restore', 'confirm', '--tenant', 'acme'], env);
    expect(confirmed.code).toBe(0);
    expect(confirmed.stdout).toBe('acme: the in-place restore is final; the previous data was dropped\n');
    expect((await runCli(['restore', 'confirm', '--tenant', 'acme'], env)).code).toBe(4);
  }, 180_000);
});
