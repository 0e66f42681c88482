import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { runCli, tempDataDir } from '../../test/support/cli.ts';
import { LocalKeyProvider } from '../adapters/keys/key-provider.local.ts';
import { FsObjectStore } from '../adapters/object-store/object-store.fs.ts';
import { decodeMasterKey } from '../config/config.ts';
import { openDatabase } from '../db/database.ts';
import { tenantSchemaName } from '../db/tenant-schema.ts';
import { composeCore } from '../main/compose.ts';
import type { AuditEntry } from '../modules/audit/audit-chain.ts';
import { AuditSigner } from '../modules/audit/audit-signer.ts';

/** `strongroom audit …` as an operator runs it, on the embedded defaults. */
describe('strongroom audit', () => {
  const dataDir = tempDataDir();
  const env = { STRONGROOM_DATA_DIR: dataDir };

  /** Opens the embedded database the CLI uses (the CLI is not running, so its lock is free). */
  async function withEmbedded(fn: (core: ReturnType<typeof composeCore>) => Promise<void>) {
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

  it('generates the signing key (0600), seals and verifies a chain, and exits 1 naming the first bad position', async () => {
    const created = await runCli(
      ['tenant', 'create', '--slug', 'audited', '--name', 'A', '--owner-email', 'a@audited.test'],
      env,
    );
    expect(created.code).toBe(0);
    expect(created.stderr).toContain('generated a new audit signing key');
    expect(statSync(join(dataDir, 'audit-signing.key')).mode & 0o777).toBe(0o600);
    const tenantId = /created tenant audited \(([0-9a-f-]{36})\)/.exec(created.stdout)![1]!;

    await withEmbedded(async (core) => {
      const entry = (i: number): AuditEntry => ({
        at: new Date(),
        tenantId,
        actorKind: 'system',
        actorId: null,
        apiKeyId: null,
        grantId: null,
        action: 'test.event',
        resourceType: null,
        resourceId: String(i),
        outcome: 'allow',
        statusCode: null,
        errorCode: null,
        requestId: null,
        ip: null,
        userAgent: null,
        changes: null,
      });
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

    await withEmbedded(async (core) => {
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
