import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedAttachment } from '../../../test/support/attachments.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { dumpTenant } from '../../../test/support/tenant-dump.ts';
import { FsObjectStore } from '../../adapters/object-store/object-store.fs.ts';
import { decryptField, encryptField } from '../../crypto/field.ts';
import { decryptBuffer } from '../../crypto/stream-aead.ts';
import type { Core } from '../../main/compose.ts';
import { systemClock } from '../../platform/clock.ts';
import { newId } from '../../platform/ids.ts';
import { type ObjectStore, scopeObjectStore } from '../../ports/object-store.port.ts';
import { objectAad } from '../attachments/attachment.service.ts';
import { BackupService } from './backup.service.ts';
import type { BackupLocation } from './backup-format.ts';

const canary = 'CANARY-7f3a9c-plaintext-never-in-backups';

/** A store that refuses writes while `down` is set: an unreachable location. */
function unreliable(store: ObjectStore): ObjectStore & { down: boolean } {
  const wrapped = {
    ...store,
    kind: store.kind,
    down: false,
    put: async (...args: Parameters<ObjectStore['put']>) => {
      if (wrapped.down) throw new Error('connect ECONNREFUSED (test: location down)');
      return store.put(...args);
    },
    get: store.get.bind(store),
    head: store.head.bind(store),
    delete: store.delete.bind(store),
    list: store.list.bind(store),
    ping: store.ping.bind(store),
    close: store.close.bind(store),
  };
  return wrapped;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(
    `backups and point-in-time restore on ${kind.name}${kind.skipReason}`,
    () => {
      let core: Core;
      let testDb: TestDatabase;
      let backups: BackupService;
      let dirs: { primary: string; secondary: string };
      let secondaryStore: ReturnType<typeof unreliable>;
      let tenantId: string;
      let objectsRoot: string;
      let userId: string;
      let projectId: string;
      /** State of the tenant recorded right after each step, with the instant it was recorded at. */
      const recorded: Array<{ at: Date; state: Record<string, string[]> }> = [];

      const step = async (
        fn: (db: Parameters<Parameters<Core['withTenant']>[1]>[0]['db']) => Promise<unknown>,
      ) => {
        await core.withTenant(tenantId, ({ db }) => fn(db));
        await sleep(15);
        const at = new Date();
        await sleep(15);
        recorded.push({ at, state: await dumpTenant(core, tenantId) });
      };
      const record = (data: Record<string, unknown>) => ({
        id: newId(),
        project_id: projectId,
        collection: 'contacts',
        data: JSON.stringify(data),
        created_by: userId,
        updated_by: userId,
      });

      beforeAll(async () => {
        objectsRoot = mkdtempSync(join(tmpdir(), 'strongroom-objects-'));
        ({ core, testDb } = await openTestCore(kind, {
          objects: new FsObjectStore({ rootDir: objectsRoot }),
        }));
        dirs = {
          primary: mkdtempSync(join(tmpdir(), 'strongroom-backup-a-')),
          secondary: mkdtempSync(join(tmpdir(), 'strongroom-backup-b-')),
        };
        secondaryStore = unreliable(new FsObjectStore({ rootDir: dirs.secondary }));
        const locations: BackupLocation[] = [
          { name: 'primary', store: new FsObjectStore({ rootDir: dirs.primary }) },
          { name: 'secondary', store: secondaryStore },
        ];
        backups = new BackupService({
          database: core.database,
          tenants: core.tenantRepository,
          withTenant: core.withTenant,
          keys: core.keys,
          locations,
          migrations: core.tenantMigrations,
          clock: systemClock,
          restoreWindowMs: 7 * 24 * 3600_000,
          objects: core.objects,
        });
        const { tenant } = await core.tenants.create({
          slug: 'acme',
          name: 'Acme',
          ownerEmail: 'o@acme.test',
        });
        tenantId = tenant.id;
        userId = newId();
        projectId = newId();
        await core.withTenant(tenantId, async ({ db }) => {
          await db
            .insertInto('users')
            .values({
              id: userId,
              email: 'ada@acme.test',
              display_name: 'Ada',
              status: 'active',
              role: 'owner',
            })
            .execute();
          await db
            .insertInto('projects')
            .values({ id: projectId, name: 'Roadmap', created_by: userId })
            .execute();
          await db
            .insertInto('records')
            .values([record({ name: canary }), record({ name: 'Grace', n: 1 })])
            .execute();
          await db
            .insertInto('settings')
            .values({ key: 'theme', value: JSON.stringify({ canary }) })
            .execute();
        });
        // The baseline: a snapshot, then changes shipped over several segments.
        await backups.shipTenant(tenantId);
        const snapshot = await backups.snapshotTenant(tenantId);
        expect(snapshot.storedIn).toEqual(['primary', 'secondary']);
        await sleep(15);
        recorded.push({ at: new Date(), state: await dumpTenant(core, tenantId) });
        const kept = record({ name: 'Linus', city: 'Helsinki', tags: ['a', 'b'] });
        await step((db) => db.insertInto('records').values(kept).execute());
        await step((db) =>
          db
            .updateTable('records')
            .set({ data: JSON.stringify({ name: 'Linus', city: 'Portland' }), version: 2 })
            .where('id', '=', kept.id)
            .execute(),
        );
        await backups.shipTenant(tenantId);
        await step((db) =>
          db
            .deleteFrom('records')
            .where('data', '@>', sql<string>`${JSON.stringify({ name: 'Grace' })}::jsonb`)
            .execute(),
        );
        await step((db) =>
          db
            .insertInto('project_members')
            .values({ project_id: projectId, user_id: userId, role: 'viewer', granted_by: userId })
            .execute(),
        );
        await backups.shipTenant(tenantId);
        await step(async (db) => {
          await db
            .updateTable('settings')
            .set({ value: JSON.stringify('dark') })
            .where('key', '=', 'theme')
            .execute();
          await db
            .insertInto('records')
            .values([record({ name: 'Barbara' }), record({ name: 'Edsger' })])
            .execute();
          await db.updateTable('users').set({ display_name: 'Ada L.' }).where('id', '=', userId).execute();
        });
        await step((db) => db.deleteFrom('projects').where('id', '=', projectId).execute());
        await backups.shipTenant(tenantId);
      }, 120_000);
      afterAll(async () => testDb?.close());

      it('ships every change to both locations, then prunes the journal', async () => {
        const status = await backups.status();
        const acme = status.find((s) => s.tenantId === tenantId)!;
        expect(acme.locations.map((l) => [l.location, l.pendingEntries, l.rpoMs])).toEqual([
          ['primary', 0, 0],
          ['secondary', 0, 0],
        ]);
        expect(acme.locations[0]?.lastSegmentNo).toBeGreaterThanOrEqual(4);
        const left = await core.withTenant(tenantId, ({ trx, schema }) =>
          sql<{ n: number }>`select count(*)::int as n from ${sql.id(schema, '_journal')}`.execute(trx),
        );
        expect(left.rows[0]?.n).toBe(0);
      });

      it('restores the tenant as it was at every recorded instant: 0 differences', async () => {
        for (const [i, { at, state }] of recorded.entries()) {
          const result = await backups.restore({ tenant: 'acme', at, intoSlug: `acme-at-${i}` });
          expect(result.snapshot.storedIn).toEqual(['primary', 'secondary']);
          const restored = await dumpTenant(core, result.tenant.id);
          expect(restored, `state at step ${i}`).toEqual(state);
          // Usage is derived, not restored: it matches the restored rows.
          const records = restored.records?.length ?? 0;
          expect((await core.quotas.usageOf(result.tenant.id)).records).toBe(records);
        }
      }, 120_000);

      it('restores from each location alone', async () => {
        const { at, state } = recorded[3]!;
        for (const from of ['primary', 'secondary']) {
          const result = await backups.restore({ tenant: 'acme', at, intoSlug: `acme-from-${from}`, from });
          expect(result.location).toBe(from);
          expect(await dumpTenant(core, result.tenant.id)).toEqual(state);
          // The restored tenant journals its own changes from here on (and only those).
          await core.withTenant(result.tenant.id, ({ db }) =>
            db.insertInto('settings').values({ key: 'after-restore', value: '1' }).execute(),
          );
          const journal = await core.withTenant(result.tenant.id, ({ trx, schema }) =>
            sql<{ table_name: string }>`select table_name from ${sql.id(schema, '_journal')}`.execute(trx),
          );
          expect(journal.rows).toEqual([{ table_name: 'settings' }]);
        }
      }, 60_000);

      it('writes no plaintext of tenant data into any backup file', () => {
        const files = [...filesUnder(dirs.primary), ...filesUnder(dirs.secondary)];
        expect(files.some((f) => f.endsWith('.seg'))).toBe(true);
        expect(files.some((f) => f.endsWith('.snap'))).toBe(true);
        for (const file of files) {
          const bytes = readFileSync(file);
          expect(bytes.includes(canary), file).toBe(false);
          expect(bytes.includes('Linus'), file).toBe(false);
        }
      });

      it('refuses a time outside the window, naming the window', async () => {
        const before = new Date(Date.now() - 3600_000);
        await expect(
          backups.restore({ tenant: 'acme', at: before, intoSlug: 'acme-early' }),
        ).rejects.toMatchObject({
          code: 'restore_time_outside_window',
          message: expect.stringMatching(/the backups cover \d{4}-.*Z to \d{4}-.*Z/),
        });
        const future = new Date(Date.now() + 3600_000);
        await expect(
          backups.restore({ tenant: 'acme', at: future, intoSlug: 'acme-late' }),
        ).rejects.toMatchObject({
          code: 'restore_time_outside_window',
        });
        expect(await core.tenantRepository.findLiveBySlug('acme-early')).toBeUndefined();
      });

      it('keeps shipping to the reachable location while the other is down, and catches up after', async () => {
        secondaryStore.down = true;
        await core.withTenant(tenantId, ({ db }) =>
          db.insertInto('settings').values({ key: 'offline-1', value: '1' }).execute(),
        );
        const first = await backups.shipTenant(tenantId);
        expect(first.failures.map((f) => f.location)).toEqual(['secondary']);
        expect(first.segmentsShipped).toBe(1);
        await sleep(20);
        const during = (await backups.status()).find((s) => s.tenantId === tenantId)!;
        const [primary, secondary] = during.locations;
        expect(primary?.pendingEntries).toBe(0);
        expect(secondary?.pendingEntries).toBe(1);
        expect(secondary?.rpoMs).toBeGreaterThan(0);
        await core.withTenant(tenantId, ({ db }) =>
          db.insertInto('settings').values({ key: 'offline-2', value: '2' }).execute(),
        );
        await backups.shipTenant(tenantId);
        secondaryStore.down = false;
        const recovered = await backups.shipTenant(tenantId);
        expect(recovered.failures).toEqual([]);
        expect(recovered.segmentsShipped).toBe(2);
        const after = (await backups.status()).find((s) => s.tenantId === tenantId)!;
        expect(after.locations.map((l) => l.pendingEntries)).toEqual([0, 0]);
        expect(after.locations[0]?.lastSegmentNo).toBe(after.locations[1]?.lastSegmentNo);
        const verification = await backups.verify();
        expect(verification.map((v) => v.problems)).toEqual([[], []]);
      });

      it('detects one flipped byte in a segment and in a snapshot; restore falls back to the intact location', async () => {
        // The newest segment and the only snapshot of acme: a restore to the last step needs both.
        const ofAcme = filesUnder(dirs.primary)
          .filter((f) => f.includes(tenantId))
          .sort();
        const segment = ofAcme.filter((f) => f.endsWith('.seg')).at(-1)!;
        const snapshot = ofAcme.find((f) => f.endsWith('.snap'))!;
        for (const file of [segment, snapshot]) {
          const bytes = readFileSync(file);
          const at = Math.floor(bytes.length / 2);
          bytes[at] = bytes[at]! ^ 0x01;
          writeFileSync(file, bytes);
        }
        const [primary, secondary] = await backups.verify();
        expect(primary?.problems.map((p) => p.problem)).toEqual([
          'decryption failed: the file was altered or truncated',
          'decryption failed: the file was altered or truncated',
        ]);
        expect(secondary?.problems).toEqual([]);
        const { at, state } = recorded.at(-1)!;
        await expect(
          backups.restore({ tenant: 'acme', at, intoSlug: 'acme-corrupt', from: 'primary' }),
        ).rejects.toMatchObject({ code: 'backup_corrupt' });
        expect(await core.tenantRepository.findLiveBySlug('acme-corrupt')).toBeUndefined();
        const fallback = await backups.restore({ tenant: 'acme', at, intoSlug: 'acme-fallback' });
        expect(fallback.location).toBe('secondary');
        expect(await dumpTenant(core, fallback.tenant.id)).toEqual(state);
      }, 60_000);

      it('reports a missing segment as a gap', async () => {
        const segments = filesUnder(dirs.secondary)
          .filter((f) => f.includes(tenantId) && f.endsWith('.seg'))
          .sort();
        const middle = segments[1]!;
        const { rmSync } = await import('node:fs');
        rmSync(middle);
        rmSync(middle.replace(/\.seg$/, '.json'));
        const [, secondary] = await backups.verify();
        expect(secondary?.problems.map((p) => p.problem)).toEqual([
          expect.stringMatching(/^journal segments (\d+) to \1 are missing$/),
        ]);
        expect(statSync(segments[0]!).size).toBeGreaterThan(0);
      });

      it('re-seals sensitive values for the new tenant: they open there, to the same plaintext', async () => {
        const { tenant } = await core.tenants.create({
          slug: 'sealed',
          name: 'Sealed',
          ownerEmail: 'o@sealed.test',
        });
        const key = await core.keys.getDataKey(tenant.id);
        const [uid, pid, before, after] = [newId(), newId(), newId(), newId()];
        const at = (tenantId: string, table: string, column: string, rowId: string) => ({
          tenantId,
          table,
          column,
          rowId,
        });
        const sealedRecord = (id: string, ssn: string) => ({
          id,
          project_id: pid,
          collection: 'people',
          data: JSON.stringify({
            name: 'Ada',
            ssn: encryptField(key, JSON.stringify(ssn), at(tenant.id, 'records', 'data.ssn', id)),
            lookalike: 'enc:v1:1:AAAA',
          }),
          created_by: uid,
          updated_by: uid,
        });
        await core.withTenant(tenant.id, async ({ db }) => {
          await db
            .insertInto('users')
            .values({
              id: uid,
              email: 'ada@sealed.test',
              display_name: 'Ada',
              status: 'active',
              role: 'owner',
              mfa_secret: encryptField(key, 'JBSWY3DPEHPK3PXP', at(tenant.id, 'users', 'mfa_secret', uid)),
            })
            .execute();
          await db.insertInto('projects').values({ id: pid, name: 'P', created_by: uid }).execute();
          await db.insertInto('records').values(sealedRecord(before, '123-45-6789')).execute();
        });
        await backups.snapshotTenant(tenant.id);
        await core.withTenant(tenant.id, ({ db }) =>
          db.insertInto('records').values(sealedRecord(after, '987-65-4321')).execute(),
        );
        await backups.shipTenant(tenant.id);
        await sleep(10);
        const result = await backups.restore({ tenant: 'sealed', at: new Date(), intoSlug: 'sealed-copy' });
        const newKey = await core.keys.getDataKey(result.tenant.id);
        const { user, records } = await core.withTenant(result.tenant.id, async ({ db }) => ({
          user: await db
            .selectFrom('users')
            .select(['mfa_secret'])
            .where('id', '=', uid)
            .executeTakeFirstOrThrow(),
          records: await db.selectFrom('records').select(['id', 'data']).orderBy('seq').execute(),
        }));
        const open = (value: unknown, table: string, column: string, rowId: string) =>
          decryptField(() => newKey.bytes, value as string, at(result.tenant.id, table, column, rowId));
        expect(open(user.mfa_secret, 'users', 'mfa_secret', uid)).toBe('JBSWY3DPEHPK3PXP');
        expect(records.map((r) => [r.id, JSON.parse(open(r.data.ssn, 'records', 'data.ssn', r.id))])).toEqual(
          [
            [before, '123-45-6789'],
            [after, '987-65-4321'],
          ],
        );
        // Not sealed values (or damaged ones) travel as they are.
        expect(records.map((r) => r.data.lookalike)).toEqual(['enc:v1:1:AAAA', 'enc:v1:1:AAAA']);
      });

      it('copies attachment files to every location; each alone brings them back, sealed for the new tenant, as they were at T', async () => {
        const { tenant } = await core.tenants.create({
          slug: 'files',
          name: 'Files',
          ownerEmail: 'o@files.test',
        });
        const store = scopeObjectStore(core.objects, `tenants/${tenant.id}/`);
        const { upload } = await seedAttachment(core, tenant.id, {
          filename: 'notes.txt',
          chunkSizeBytes: 1024,
        });
        const first = `first draft ${canary} `.repeat(200);
        await upload(1, first);
        const snapshot = await backups.snapshotTenant(tenant.id);
        expect(snapshot.objectsCopied).toBe(2);
        await sleep(10);
        const between = new Date();
        await sleep(10);
        await upload(2, 'second draft');
        const shipped = await backups.shipTenant(tenant.id);
        // Only the new version's file: the first is in both locations already.
        expect(shipped.objectsCopied).toBe(2);
        expect(shipped.objectsMissing).toEqual([]);

        // Each location holds every file, byte for byte as the attachment store holds it.
        const liveKeys: string[] = [];
        for await (const info of store.list('attachments/')) liveKeys.push(info.key);
        expect(liveKeys).toHaveLength(2);
        for (const dir of [dirs.primary, dirs.secondary]) {
          for (const objectKey of liveKeys) {
            const copy = readFileSync(join(dir, 'tenants', tenant.id, 'objects', objectKey));
            expect(copy.equals(Buffer.concat(await (await store.get(objectKey)).toArray()))).toBe(true);
            expect(copy.includes(canary)).toBe(false);
            expect(copy.includes('second draft')).toBe(false);
          }
        }
        // A second round copies nothing again.
        expect((await backups.snapshotTenant(tenant.id)).objectsCopied).toBe(0);

        // The attachment store loses every file of the tenant: each location alone brings them back.
        for (const objectKey of liveKeys) await store.delete(objectKey);
        for (const from of ['primary', 'secondary']) {
          for (const [at, slug, expected] of [
            [between, `files-then-${from}`, [first]],
            [new Date(), `files-now-${from}`, [first, 'second draft']],
          ] as const) {
            const result = await backups.restore({ tenant: 'files', at, intoSlug: slug, from });
            expect(result.objectsRestored).toBe(expected.length);
            expect(result.objectsFromLiveStore).toBe(0);
            const newKey = await core.keys.getDataKey(result.tenant.id);
            const versions = await core.withTenant(result.tenant.id, ({ db }) =>
              db
                .selectFrom('attachment_versions')
                .select(['object_key', 'key_version'])
                .orderBy('version')
                .execute(),
            );
            const target = scopeObjectStore(core.objects, `tenants/${result.tenant.id}/`);
            const texts = [];
            for (const v of versions) {
              expect(v.key_version).toBe(newKey.version);
              const sealed = Buffer.concat(await (await target.get(v.object_key)).toArray());
              texts.push(
                decryptBuffer(newKey.bytes, sealed, {
                  aad: objectAad(result.tenant.id, v.object_key),
                }).toString(),
              );
            }
            expect(texts).toEqual(expected);
            // The usage counters are not backed up: the restore recounts them from the loaded tables.
            const usage = await core.quotas.usageOf(result.tenant.id);
            expect(usage.attachmentBytes).toBe(
              expected.reduce((sum, text) => sum + Buffer.byteLength(text), 0),
            );
          }
        }

        // One flipped byte in a copied file: verify names it; a restore from there refuses, and
        // nothing of the half-made tenant stays (no row, no file).
        const copied = join(dirs.secondary, 'tenants', tenant.id, 'objects', liveKeys[0]!);
        const bytes = readFileSync(copied);
        bytes[100] = bytes[100]! ^ 0x01;
        writeFileSync(copied, bytes);
        const [, secondary] = await backups.verify();
        expect(secondary?.problems.filter((p) => p.key.includes('/objects/'))).toEqual([
          {
            key: `tenants/${tenant.id}/objects/${liveKeys[0]}`,
            problem: 'decryption failed: the file was altered or truncated',
          },
        ]);
        const objectsBefore = filesUnder(objectsRoot).length;
        await expect(
          backups.restore({ tenant: 'files', at: new Date(), intoSlug: 'files-corrupt', from: 'secondary' }),
        ).rejects.toMatchObject({ code: 'backup_corrupt', message: expect.stringContaining('/objects/') });
        expect(await core.tenantRepository.findLiveBySlug('files-corrupt')).toBeUndefined();
        expect(filesUnder(objectsRoot).length).toBe(objectsBefore);
      }, 60_000);

      it('after tenant deletion the backups are shredded: verify says so, restore refuses', async () => {
        const { tenant } = await core.tenants.create({
          slug: 'doomed',
          name: 'Doomed',
          ownerEmail: 'o@doomed.test',
        });
        await core.withTenant(tenant.id, ({ db }) =>
          db.insertInto('settings').values({ key: 'k', value: '1' }).execute(),
        );
        await backups.snapshotTenant(tenant.id);
        await backups.shipTenant(tenant.id);
        await core.tenants.delete('doomed', 'doomed');
        const verification = await backups.verify();
        for (const location of verification) expect(location.shreddedTenants).toEqual([tenant.id]);
        await expect(
          backups.restore({ tenant: tenant.id, at: new Date(), intoSlug: 'undoomed' }),
        ).rejects.toMatchObject({ code: 'backup_shredded' });
      });
    },
  );
}
