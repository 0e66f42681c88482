import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempDataDir } from './support/cli.ts';

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
