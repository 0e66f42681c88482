import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { OutboxMailer } from '../../adapters/mail/mailer.outbox.ts';
import { FsObjectStore } from '../../adapters/object-store/object-store.fs.ts';
import type { Core } from '../../main/compose.ts';
import { systemClock } from '../../platform/clock.ts';
import { BackupService } from './backup.service.ts';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`restore drills on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let backups: BackupService;
    let dirs: string[];
    let outbox: string;
    let tenantId: string;
    const schemaCount = async () =>
      (
        await sql<{
          n: number;
        }>`select count(*)::int as n from pg_catalog.pg_namespace where nspname ~ '^t_'`.execute(
          core.database.db,
        )
      ).rows[0]?.n;

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'strongroom-drill-')));
      outbox = mkdtempSync(join(tmpdir(), 'strongroom-drill-outbox-'));
      backups = new BackupService({
        database: core.database,
        tenants: core.tenantRepository,
        withTenant: core.withTenant,
        keys: core.keys,
        locations: dirs.map((dir, i) => ({ name: `l${i}`, store: new FsObjectStore({ rootDir: dir }) })),
        migrations: core.tenantMigrations,
        clock: systemClock,
        restoreWindowMs: 7 * 24 * 3600_000,
        objects: core.objects,
        alerts: {
          mailer: new OutboxMailer({ dir: outbox, from: 'Strongroom <sr@example.test>' }),
          to: 'ops@example.test',
        },
      });
      const { tenant } = await core.tenants.create({ slug: 'drilled', name: 'D', ownerEmail: 'o@d.test' });
      tenantId = tenant.id;
      await core.withTenant(tenantId, ({ db }) =>
        db.insertInto('settings').values({ key: 'a', value: '1' }).execute(),
      );
      await backups.snapshotTenant(tenantId);
      await core.withTenant(tenantId, ({ db }) =>
        db.insertInto('settings').values({ key: 'b', value: '2' }).execute(),
      );
      await backups.shipTenant(tenantId);
    });
    afterAll(async () => testDb?.close());

    it('restores into scratch schemas from every location, agrees, records it, and leaves nothing behind', async () => {
      const schemas = await schemaCount();
      const tenants = (await core.tenantRepository.list({ includeDeleted: true, limit: 100 })).length;
      const [result] = await backups.drill({ tenant: 'drilled' });
      expect(result).toMatchObject({ tenantId, outcome: 'passed', message: null, locations: ['l0', 'l1'] });
      expect(result!.tables.l0).toEqual(result!.tables.l1);
      expect(result!.tables.l0?.settings?.rows).toBeGreaterThanOrEqual(1);
      expect(await schemaCount()).toBe(schemas);
      expect((await core.tenantRepository.list({ includeDeleted: true, limit: 100 })).length).toBe(tenants);
      expect((await backups.drills()).map((d) => [d.id, d.outcome])).toEqual([[result!.id, 'passed']]);
      expect(readdirSync(outbox)).toEqual([]);
    });

    it('fails on a corrupt backup: recorded, and mailed to the ops address', async () => {
      const snap = join(dirs[1]!, 'tenants', tenantId, 'snapshots');
      const file = join(snap, readdirSync(snap).find((f) => f.endsWith('.snap'))!);
      const bytes = readFileSync(file);
      bytes[40] = bytes[40]! ^ 0x01;
      writeFileSync(file, bytes);
      const [result] = await backups.drill({ tenant: tenantId });
      expect(result?.outcome).toBe('failed');
      expect(result?.message).toMatch(/^l1: \[backup_corrupt\]/);
      expect((await backups.drills())[0]).toMatchObject({ id: result!.id, outcome: 'failed' });
      const mails = readdirSync(outbox);
      expect(mails).toHaveLength(1);
      const mail = readFileSync(join(outbox, mails[0]!), 'utf8');
      expect(mail).toContain('ops@example.test');
      expect(mail).toContain('restore drill');
      await expect(backups.drill({ tenant: 'nobody' })).rejects.toMatchObject({ code: 'tenant_not_found' });
    });
  });
}
