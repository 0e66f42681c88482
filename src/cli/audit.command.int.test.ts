import { readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { systemAuditEntry } from '../../test/support/audit.ts';
import { runCli, tempDataDir } from '../../test/support/cli.ts';
import { LocalKeyProvider } from '../adapters/keys/key-provider.local.ts';
import { FsObjectStore } from '../adapters/object-store/object-store.fs.ts';
import { decodeMasterKey } from '../config/config.ts';
import { openDatabase } from '../db/database.ts';
import { tenantSchemaName } from '../db/tenant-schema.ts';
import { composeCore } from '../main/compose.ts';
import { AuditSigner } from '../modules/audit/audit-signer.ts';

/** Opens the embedded database the CLI uses (the CLI is not running, so its lock is free). */
async function withEmbedded(dataDir: string, fn: (core: ReturnType<typeof composeCore>) => Promise<void>) {
  const database = await openDatabase({
    kind: 'pglite',
    dataDir: join(dataDir, 'pglite'),
    statementTimeoutMs: 5_000,
    roles: 'auto',
  });
  try {
    const key = (file: string) => decodeMasterKey(readFileSync(join(dataDir, file), 'utf8'))!;
    await fn(
      composeCore({
        database,
        keyProvider: new LocalKeyProvider({ current: key('master.key') }),
        objects: new FsObjectStore({ rootDir: join(dataDir, 'objects') }),
        auditSigner: new AuditSigner(key('audit-signing.key')),
      }),
    );
  } finally {
    await database.close();
  }
}

/** `strongroom audit …` as an operator runs it, on the embedded defaults. */
describe('strongroom audit', () => {
  const dataDir = tempDataDir();
  const env = { STRONGROOM_DATA_DIR: dataDir };

  it('generates the signing key (0600), seals and verifies a chain, and exits 1 naming the first bad position', async () => {
    const created = await runCli(
      ['tenant', 'create', '--slug', 'audited', '--name', 'A', '--owner-email', 'a@audited.test'],
      env,
    );
    expect(created.code).toBe(0);
    expect(created.stderr).toContain('generated a new audit signing key');
    expect(statSync(join(dataDir, 'audit-signing.key')).mode & 0o777).toBe(0o600);
    const tenantId = /created tenant audited \(([0-9a-f-]{36})\)/.exec(created.stdout)![1]!;

    await withEmbedded(dataDir, async (core) => {
      const entry = (i: number) => systemAuditEntry(tenantId, { resourceId: String(i) });
      await core.withTenant(tenantId, (scope) => core.audit.append(scope, [1, 2, 3, 4, 5].map(entry)));
    });

    const sealed = await runCli(['audit', 'checkpoint', '--tenant', 'audited'], env);
    expect(sealed.code).toBe(0);
    expect(sealed.stdout).toMatch(/sealed position 5 \([0-9a-f]{64}\)/);
    const ok = await runCli(['audit', 'verify', '--tenant', 'audited'], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(
      'ok: 5 entries, head 5, 1 checkpoints in the database, 1 in the object store',
    );
    const publicKey = await runCli(['audit', 'public-key'], env);
    expect(publicKey.stdout).toContain('BEGIN PUBLIC KEY');
    expect(publicKey.stdout + ok.stdout + ok.stderr).not.toContain(
      readFileSync(join(dataDir, 'audit-signing.key'), 'utf8').trim(),
    );

    await withEmbedded(dataDir, async (core) => {
      const log = sql.id(tenantSchemaName(tenantId), 'audit_log');
      await sql`alter table ${log} disable trigger user`.execute(core.database.db);
      await sql`update ${log} set resource_id = 'forged' where position = 3`.execute(core.database.db);
      await sql`alter table ${log} enable trigger user`.execute(core.database.db);
    });
    const broken = await runCli(['audit', 'verify', '--tenant', 'audited'], env);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain('BROKEN at position 3 (modified)');
    const json = await runCli(['audit', 'verify', '--tenant', 'audited', '--json'], env);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, problem: { position: 3, class: 'modified' } });

    const retention = await runCli(['audit', 'retention', '--tenant', 'audited', '--days', '400'], env);
    expect(retention.stdout).toContain('audited keeps audit entries for 400 days');
    const tooShort = await runCli(['audit', 'retention', '--tenant', 'audited', '--days', '2'], env);
    expect(tooShort.code).toBe(2);
    expect(tooShort.stderr).toContain('audit_retention_too_short');

    const platform = await runCli(['audit', 'verify', '--platform'], env);
    expect(platform.code).toBe(0);
    const neither = await runCli(['audit', 'verify'], env);
    expect(neither.code).toBe(64);
  }, 120_000);
});

/** Every command that acts on the platform, as an operator runs it: one platform entry each. */
describe('strongroom commands on the platform audit chain', () => {
  const dataDir = tempDataDir();
  const env = { STRONGROOM_DATA_DIR: dataDir };

  it('records each command once, with the operator, action, resource and outcome, and never a secret', async () => {
    const actor = `cli:${userInfo().username}`;
    const outputs: string[] = [];
    const expected: Array<Record<string, unknown>> = [];
    const run = async (args: string[], entry: Record<string, unknown>, code = 0) => {
      const result = await runCli(args, env, 120_000);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(code);
      outputs.push(result.stdout, result.stderr);
      expected.push({ actorKind: 'system', actorId: actor, outcome: 'allow', errorCode: null, ...entry });
      return result;
    };
    const idIn = (text: string, pattern: RegExp) => pattern.exec(text)![1]!;

    const created = await run(
      ['tenant', 'create', '--slug', 'acme', '--name', 'Acme', '--owner-email', 'a@acme.test'],
      { action: 'tenants.create', resourceType: 'tenants', changes: ['name', 'ownerEmail', 'slug'] },
    );
    const tenantId = idIn(created.stdout, /created tenant acme \(([0-9a-f-]{36})\)/);
    Object.assign(expected.at(-1)!, { resourceId: tenantId, tenantId });
    const ofAcme = { resourceType: 'tenants', resourceId: tenantId, tenantId };
    await run(['tenant', 'suspend', 'acme'], { action: 'tenants.suspend', ...ofAcme });
    await run(['tenant', 'resume', 'acme'], { action: 'tenants.resume', ...ofAcme });

    const staff = await run(
      ['staff', 'create', '--email', 's@ops.test', '--name', 'S', '--role', 'support'],
      {
        action: 'staff.create',
        resourceType: 'staff',
        changes: ['email', 'name', 'role'],
      },
    );
    const staffId = idIn(staff.stdout, /created support s@ops\.test \(([0-9a-f-]{36})\)/);
    Object.assign(expected.at(-1)!, { resourceId: staffId });
    const ofStaff = { resourceType: 'staff', resourceId: staffId, tenantId: null };
    await run(['staff', 'reset-mfa', 's@ops.test'], { action: 'staff.reset_mfa', ...ofStaff });
    await run(['staff', 'disable', 's@ops.test'], { action: 'staff.disable', ...ofStaff });
    await run(
      ['staff', 'disable', 'nobody@ops.test'],
      { action: 'staff.disable', resourceId: null, outcome: 'deny', errorCode: 'staff_not_found' },
      4,
    );
    await run(['keys', 'rotate-master'], { action: 'keys.rotate_master', resourceId: null, changes: null });
    await run(['user', 'list', '--tenant', 'acme'], { action: 'users.list', resourceId: null, tenantId });
    const ofChain = { resourceType: 'audit_log', resourceId: tenantId, tenantId };
    await run(['audit', 'checkpoint', '--tenant', 'acme'], { action: 'audit.checkpoint', ...ofChain });
    await run(['audit', 'retention', '--tenant', 'acme', '--days', '400'], {
      action: 'audit.retention.update',
      ...ofChain,
      changes: ['days', 'tenant'],
    });
    await run(
      ['audit', 'retention', '--tenant', 'acme', '--days', '2'],
      {
        action: 'audit.retention.update',
        ...ofChain,
        outcome: 'error',
        errorCode: 'audit_retention_too_short',
      },
      2,
    );
    await run(['attachments', 'maintain'], { action: 'attachments.maintain' });
    await run(['backup', 'snapshot', '--tenant', 'acme'], {
      action: 'backups.snapshot',
      tenantId,
      changes: ['tenant'],
    });
    await run(['backup', 'ship'], { action: 'backups.ship' });
    await run(['backup', 'verify'], { action: 'backups.verify' });
    await run(['backup', 'prune'], { action: 'backups.prune' });
    await run(['backup', 'drill', '--tenant', 'acme'], {
      action: 'backups.drill',
      tenantId,
      changes: ['tenant'],
    });
    const restored = await run(
      ['restore', '--tenant', 'acme', '--at', new Date().toISOString(), '--into', 'acme-copy'],
      { action: 'tenants.restore', resourceType: 'tenants', changes: ['at', 'into', 'tenant'] },
    );
    const copyId = idIn(restored.stdout, /into new tenant acme-copy \(([0-9a-f-]{36})\)/);
    Object.assign(expected.at(-1)!, { resourceId: copyId, tenantId: copyId });
    await run(['migrate'], { action: 'platform.migrate' });
    await run(
      ['tenant', 'delete', 'acme'],
      { action: 'tenants.delete', resourceId: null, outcome: 'error', errorCode: 'confirmation_required' },
      2,
    );
    await run(['tenant', 'delete', 'acme', '--confirm', 'acme'], {
      action: 'tenants.delete',
      ...ofAcme,
      changes: ['confirm'],
    });
    // Reads of platform metadata and usage errors caught before anything opens leave nothing.
    for (const args of [
      ['tenant', 'list'],
      ['staff', 'list'],
      ['backup', 'status'],
      ['backup', 'drills'],
      ['audit', 'verify'],
    ])
      outputs.push((await runCli(args, env)).stdout);
    await run(['audit', 'verify', '--platform'], {
      action: 'audit.verify',
      resourceId: null,
      tenantId: null,
    });

    await withEmbedded(dataDir, async (core) => {
      const { rows } = await sql<Record<string, unknown>>`
        select actor_kind as "actorKind", actor_id as "actorId", action, resource_type as "resourceType",
          resource_id as "resourceId", tenant_id::text as "tenantId", outcome, error_code as "errorCode",
          changes, request_id as "requestId", user_agent as "userAgent"
        from control.audit_log order by position`.execute(core.database.db);
      expect(rows).toHaveLength(expected.length);
      rows.forEach((row, i) => {
        expect(row, String(expected[i]!.action)).toMatchObject(expected[i]!);
        expect(row).toMatchObject({
          requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
          userAgent: 'strongroom-cli',
        });
      });
      // No token the commands printed, and no key, is in any entry.
      const stored = JSON.stringify(rows);
      const secrets = [...outputs.join('\n').matchAll(/\b(?:srs|sro|srt|srk)_[A-Za-z0-9_-]{20,}/g)].map(
        (m) => m[0],
      );
      expect(secrets.length).toBeGreaterThanOrEqual(2);
      for (const file of ['master.key', 'audit-signing.key'])
        secrets.push(readFileSync(join(dataDir, file), 'utf8').trim());
      for (const secret of secrets) expect(stored).not.toContain(secret);
    });
  }, 600_000);
});
