import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { type S3rverInstance, startS3rver } from '../../../test/support/s3rver.ts';
import { loadConfig } from '../../config/config.ts';
import { openObjectStore } from '../../main/adapters.ts';
import type { Core } from '../../main/compose.ts';
import { systemClock } from '../../platform/clock.ts';
import { BackupService } from './backup.service.ts';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(
    `backups to a folder and an S3 bucket on ${kind.name}${kind.skipReason}`,
    () => {
      let core: Core;
      let testDb: TestDatabase;
      let s3: S3rverInstance;
      let backups: BackupService;

      beforeAll(async () => {
        ({ core, testDb } = await openTestCore(kind));
        s3 = await startS3rver();
        // The locations as an operator configures them: one variable, credentials from a file.
        const folder = mkdtempSync(join(tmpdir(), 'strongroom-backup-local-'));
        const config = loadConfig(
          {
            STRONGROOM_MASTER_KEY: 'a'.repeat(64),
            STRONGROOM_BACKUP_LOCATIONS: `local=file://${folder},offsite=s3://${s3.bucket}?endpoint=${s3.endpoint}&region=us-east-1&forcePathStyle=true`,
            STRONGROOM_BACKUP_CREDENTIALS_FILE: '/run/secrets/backup.json',
          },
          {
            readSecretFile: () =>
              JSON.stringify({
                offsite: {
                  accessKeyId: s3.credentials.accessKeyId,
                  secretAccessKey: s3.credentials.secretAccessKey,
                },
              }),
          },
        );
        backups = new BackupService({
          database: core.database,
          tenants: core.tenantRepository,
          withTenant: core.withTenant,
          keys: core.keys,
          locations: config.backup.locations.map((l) => ({ name: l.name, store: openObjectStore(l) })),
          migrations: core.tenantMigrations,
          clock: systemClock,
          restoreWindowMs: 7 * 24 * 3600_000,
          objects: core.objects,
        });
      }, 60_000);
      afterAll(async () => {
        await s3?.stop();
        await testDb?.close();
      });

      it('restores from the S3 location alone, and keeps the folder current while S3 is down', async () => {
        const { tenant } = await core.tenants.create({
          slug: 'globex',
          name: 'Globex',
          ownerEmail: 'o@globex.test',
        });
        const write = (key: string) =>
          core.withTenant(tenant.id, ({ db }) =>
            db.insertInto('settings').values({ key, value: '1' }).execute(),
          );
        await write('before-snapshot');
        await backups.snapshotTenant(tenant.id);
        await write('after-snapshot');
        await backups.shipTenant(tenant.id);
        await sleep(10);
        const restored = await backups.restore({
          tenant: 'globex',
          at: new Date(),
          intoSlug: 'globex-s3',
          from: 'offsite',
        });
        expect(restored.location).toBe('offsite');
        const keys = await core.withTenant(restored.tenant.id, ({ db }) =>
          db.selectFrom('settings').select('key').orderBy('key').execute(),
        );
        expect(keys.map((k) => k.key)).toEqual(['after-snapshot', 'before-snapshot']);
        expect((await backups.verify()).map((v) => [v.location, v.problems])).toEqual([
          ['local', []],
          ['offsite', []],
        ]);

        await s3.stop();
        await write('while-s3-down');
        const shipped = await backups.shipTenant(tenant.id);
        expect(shipped.failures.map((f) => f.location)).toEqual(['offsite']);
        const status = (await backups.status()).find((s) => s.tenantId === tenant.id)!;
        expect(status.locations.map((l) => [l.location, l.pendingEntries])).toEqual([
          ['local', 0],
          ['offsite', 1],
        ]);
      }, 120_000);
    },
  );
}
