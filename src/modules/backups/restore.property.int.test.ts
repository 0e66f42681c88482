import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { dumpTenant } from '../../../test/support/tenant-dump.ts';
import { FsObjectStore } from '../../adapters/object-store/object-store.fs.ts';
import type { Core } from '../../main/compose.ts';
import { systemClock } from '../../platform/clock.ts';
import { newId } from '../../platform/ids.ts';
import { BackupService } from './backup.service.ts';

/** One step of a tenant's life; indexes pick among the records that exist (modulo their number). */
type Op =
  | { kind: 'create'; data: Record<string, unknown> }
  | { kind: 'update'; pick: number; data: Record<string, unknown> }
  | { kind: 'delete'; pick: number }
  | { kind: 'setting'; key: string; value: number }
  | { kind: 'member'; role: 'viewer' | 'contributor' | null }
  | { kind: 'ship' }
  | { kind: 'snapshot' };

const recordData = fc.record({
  name: fc.string({ maxLength: 12 }),
  n: fc.integer(),
  tags: fc.array(fc.constantFrom('a', 'b', 'ü', '"q"', '\n'), { maxLength: 3 }),
});
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: recordData.map((data) => ({ kind: 'create' as const, data })) },
  {
    weight: 3,
    arbitrary: fc
      .record({ pick: fc.nat(), data: recordData })
      .map((o) => ({ kind: 'update' as const, ...o })),
  },
  { weight: 2, arbitrary: fc.nat().map((pick) => ({ kind: 'delete' as const, pick })) },
  {
    weight: 2,
    arbitrary: fc
      .record({ key: fc.constantFrom('theme', 'locale'), value: fc.integer() })
      .map((o) => ({ kind: 'setting' as const, ...o })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('viewer' as const, 'contributor' as const, null)
      .map((role) => ({ kind: 'member' as const, role })),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'ship' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'snapshot' as const }) },
);

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(
    `point-in-time restore, property-based, on ${kind.name}${kind.skipReason}`,
    () => {
      let core: Core;
      let testDb: TestDatabase;
      let backups: BackupService;
      let run = 0;

      beforeAll(async () => {
        ({ core, testDb } = await openTestCore(kind));
        backups = new BackupService({
          database: core.database,
          tenants: core.tenantRepository,
          withTenant: core.withTenant,
          keys: core.keys,
          locations: [
            {
              name: 'one',
              store: new FsObjectStore({ rootDir: mkdtempSync(join(tmpdir(), 'strongroom-pbt-a-')) }),
            },
            {
              name: 'two',
              store: new FsObjectStore({ rootDir: mkdtempSync(join(tmpdir(), 'strongroom-pbt-b-')) }),
            },
          ],
          migrations: core.tenantMigrations,
          clock: systemClock,
          restoreWindowMs: 7 * 24 * 3600_000,
          objects: core.objects,
        });
      });
      afterAll(async () => testDb?.close());

      it('a restore to any recorded instant equals the state at that instant, and leaves other tenants alone', async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.array(op, { minLength: 4, maxLength: 14 }),
            fc.array(fc.nat(), { minLength: 2, maxLength: 2 }),
            async (ops, picks) => {
              run++;
              const { tenant } = await core.tenants.create({
                slug: `pbt-${run}`,
                name: 'PBT',
                ownerEmail: 'o@pbt.test',
              });
              const userId = newId();
              const projectId = newId();
              await core.withTenant(tenant.id, async ({ db }) => {
                await db
                  .insertInto('users')
                  .values({
                    id: userId,
                    email: 'u@pbt.test',
                    display_name: 'U',
                    status: 'active',
                    role: 'owner',
                  })
                  .execute();
                await db
                  .insertInto('projects')
                  .values({ id: projectId, name: 'P', created_by: userId })
                  .execute();
              });
              await backups.snapshotTenant(tenant.id);
              const recorded: Array<{ at: Date; state: Record<string, string[]> }> = [];
              const records: string[] = [];
              for (const o of ops) {
                if (o.kind === 'ship') await backups.shipTenant(tenant.id);
                else if (o.kind === 'snapshot') await backups.snapshotTenant(tenant.id);
                else
                  await core.withTenant(tenant.id, async ({ db }) => {
                    if (o.kind === 'create') {
                      const id = newId();
                      records.push(id);
                      await db
                        .insertInto('records')
                        .values({
                          id,
                          project_id: projectId,
                          collection: 'things',
                          data: JSON.stringify(o.data),
                          created_by: userId,
                          updated_by: userId,
                        })
                        .execute();
                    } else if (o.kind === 'update' && records.length > 0) {
                      const id = records[o.pick % records.length]!;
                      await db
                        .updateTable('records')
                        .set({
                          data: JSON.stringify(o.data),
                          version: sql`version + 1`,
                          updated_at: sql`now()`,
                        })
                        .where('id', '=', id)
                        .execute();
                    } else if (o.kind === 'delete' && records.length > 0) {
                      const [id] = records.splice(o.pick % records.length, 1);
                      await db.deleteFrom('records').where('id', '=', id!).execute();
                    } else if (o.kind === 'setting') {
                      await db
                        .insertInto('settings')
                        .values({ key: o.key, value: JSON.stringify(o.value) })
                        .onConflict((c) => c.column('key').doUpdateSet({ value: JSON.stringify(o.value) }))
                        .execute();
                    } else if (o.kind === 'member') {
                      await db.deleteFrom('project_members').where('project_id', '=', projectId).execute();
                      if (o.role)
                        await db
                          .insertInto('project_members')
                          .values({
                            project_id: projectId,
                            user_id: userId,
                            role: o.role,
                            granted_by: userId,
                          })
                          .execute();
                    }
                  });
                await sleep(3);
                const at = new Date();
                await sleep(3);
                recorded.push({ at, state: await dumpTenant(core, tenant.id) });
              }
              await backups.shipTenant(tenant.id);
              const others = await dumpTenant(
                core,
                (await core.tenantRepository.findLiveBySlug('pbt-1'))!.id,
              );
              for (const [i, pick] of picks.entries()) {
                const { at, state } = recorded[pick % recorded.length]!;
                const result = await backups.restore({ tenant: tenant.id, at, intoSlug: `pbt-${run}-r${i}` });
                expect(await dumpTenant(core, result.tenant.id)).toEqual(state);
              }
              if (run > 1)
                expect(
                  await dumpTenant(core, (await core.tenantRepository.findLiveBySlug('pbt-1'))!.id),
                ).toEqual(others);
            },
          ),
          // PBT_RUNS runs more cases; PBT_SEED and PBT_PATH replay a reported failure.
          {
            numRuns: Number(process.env.PBT_RUNS ?? 6),
            ...(process.env.PBT_SEED
              ? { seed: Number(process.env.PBT_SEED), path: process.env.PBT_PATH }
              : {}),
          },
        );
      }, 300_000);
    },
  );
}
