import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedAttachment } from '../../../test/support/attachments.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { FsObjectStore } from '../../adapters/object-store/object-store.fs.ts';
import type { Core } from '../../main/compose.ts';
import { type Clock, systemClock } from '../../platform/clock.ts';
import { AttachmentService } from '../attachments/attachment.service.ts';
import { BackupService } from './backup.service.ts';
import type { BackupLocation } from './backup-format.ts';

const windowMs = 24 * 3600_000;

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`backup retention on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let dirs: string[];
    let locations: BackupLocation[];
    const service = (clock: Clock) =>
      new BackupService({
        database: core.database,
        tenants: core.tenantRepository,
        withTenant: core.withTenant,
        keys: core.keys,
        locations,
        migrations: core.tenantMigrations,
        clock,
        restoreWindowMs: windowMs,
        objects: core.objects,
      });

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'strongroom-retention-')));
      locations = dirs.map((dir, i) => ({ name: `l${i}`, store: new FsObjectStore({ rootDir: dir }) }));
    });
    afterAll(async () => testDb?.close());

    it('deletes only what no restore inside the window needs, leaving no gap', async () => {
      const backups = service(systemClock);
      const { tenant } = await core.tenants.create({ slug: 'kept', name: 'Kept', ownerEmail: 'o@kept.test' });
      const write = (key: string) =>
        core.withTenant(tenant.id, ({ db }) =>
          db.insertInto('settings').values({ key, value: '1' }).execute(),
        );
      const snapshots = [];
      for (const key of ['a', 'b', 'c']) {
        await write(key);
        await backups.shipTenant(tenant.id);
        await sleep(10);
        snapshots.push(await backups.snapshotTenant(tenant.id));
        await sleep(10);
      }
      await write('d');
      await backups.shipTenant(tenant.id);
      await sleep(10);
      const latest = new Date();

      // A clock at which the window starts just before the third snapshot: the second is the base.
      const third = snapshots[2]!.takenAt.getTime();
      const later = service({ now: () => new Date(third - 1 + windowMs) });
      const summaries = await later.prune();
      for (const summary of summaries) {
        expect(summary.problems).toEqual([]);
        expect(summary.snapshotsDeleted).toBe(1);
        expect(summary.segmentsDeleted).toBeGreaterThanOrEqual(2);
      }
      for (const dir of dirs) {
        const left = readdirSync(join(dir, 'tenants', tenant.id, 'snapshots')).filter((f) =>
          f.endsWith('.json'),
        );
        expect(left.sort()).toEqual(
          [`${snapshots[1]!.snapshotId}.json`, `${snapshots[2]!.snapshotId}.json`].sort(),
        );
      }
      expect((await backups.verify()).map((v) => v.problems)).toEqual([[], []]);

      for (const from of ['l0', 'l1']) {
        const restored = await backups.restore({
          tenant: 'kept',
          at: latest,
          intoSlug: `kept-${from}`,
          from,
        });
        const keys = await core.withTenant(restored.tenant.id, ({ db }) =>
          db.selectFrom('settings').select('key').orderBy('key').execute(),
        );
        expect(keys.map((k) => k.key)).toEqual(['a', 'b', 'c', 'd']);
      }
      await expect(
        backups.restore({ tenant: 'kept', at: snapshots[0]!.takenAt, intoSlug: 'kept-early' }),
      ).rejects.toMatchObject({ code: 'restore_time_outside_window' });
    });

    it('deletes attachment copies once the attachment store purged their version, and a restore in the window still works', async () => {
      const backups = service(systemClock);
      const { tenant } = await core.tenants.create({ slug: 'files', name: 'Files', ownerEmail: 'o@f.test' });
      const { upload } = await seedAttachment(core, tenant.id);
      const v1 = await upload(1, 'one');
      await backups.snapshotTenant(tenant.id);
      const v2 = await upload(2, 'two');
      await sleep(20);
      const windowStart = new Date();
      await sleep(20);
      await core.withTenant(tenant.id, ({ db }) =>
        db.insertInto('settings').values({ key: 'after', value: '1' }).execute(),
      );
      await backups.shipTenant(tenant.id);
      await sleep(10);
      const at = new Date();

      // One window later (as seen from windowStart), v1 has been retired longer than the window.
      const later = { now: () => new Date(windowStart.getTime() + windowMs) };
      const attachments = new AttachmentService({
        withTenant: core.withTenant,
        keys: core.keys,
        objects: core.objects,
        limitsOf: (id) => core.quotas.limitsOf(id),
        clock: later,
        restoreWindowMs: windowMs,
      });
      expect((await attachments.maintain(tenant.id)).purged).toBe(1);
      const summaries = await service(later).prune();
      expect(summaries.map((s) => [s.objectsDeleted, s.problems])).toEqual([
        [1, []],
        [1, []],
      ]);
      for (const dir of dirs) {
        const held = readdirSync(join(dir, 'tenants', tenant.id, 'objects', 'attachments')).sort();
        expect(held).toEqual([v2.split('/')[1], `${v2.split('/')[1]}.json`].sort());
      }
      expect(v1).not.toBe(v2);

      // A restore to an instant in the window finds v1 retired there: recorded purged, v2 comes back.
      for (const from of ['l0', 'l1']) {
        const restored = await service(later).restore({
          tenant: 'files',
          at,
          intoSlug: `files-${from}`,
          from,
        });
        expect(restored.objectsRestored).toBe(1);
        const versions = await core.withTenant(restored.tenant.id, ({ db }) =>
          db.selectFrom('attachment_versions').select(['version', 'purged_at']).orderBy('version').execute(),
        );
        expect(versions.map((v) => [v.version, v.purged_at !== null])).toEqual([
          [1, true],
          [2, false],
        ]);
      }
    });
  });
}
