import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import type { TenantScope } from '../../db/with-tenant.ts';
import type { Core } from '../../main/compose.ts';
import { streamTableRows } from './backup.repository.ts';

/** The snapshot's row source: batches read ahead through a cursor, every row once, in any batch size. */
for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`streamTableRows on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let tenantId: string;

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      ({
        tenant: { id: tenantId },
      } = await core.tenants.create({ slug: 'rows', name: 'Rows', ownerEmail: 'o@rows.test' }));
      await core.withTenant(tenantId, (scope) =>
        scope.db
          .insertInto('settings')
          .values(Array.from({ length: 7 }, (_, i) => ({ key: `k${i}`, value: JSON.stringify(i) })))
          .execute(),
      );
    });
    afterAll(async () => testDb?.close());

    const collect = async (scope: TenantScope, batchSize: number, stopAfter = Number.POSITIVE_INFINITY) => {
      const batches: string[][] = [];
      for await (const batch of streamTableRows(scope, 'settings', batchSize)) {
        batches.push(batch);
        if (batches.length >= stopAfter) break;
      }
      return batches;
    };
    const inSnapshot = <T>(fn: (scope: TenantScope) => Promise<T>) =>
      core.withTenant(tenantId, fn, { readOnly: true, isolation: 'repeatable read' });

    it('yields every row once, in batches of the given size and never an empty one', async () => {
      for (const [size, shape] of [
        [3, [3, 3, 1]],
        [7, [7]],
        [1, [1, 1, 1, 1, 1, 1, 1]],
        [100, [7]],
      ] as const) {
        const batches = await inSnapshot((scope) => collect(scope, size));
        expect(batches.map((b) => b.length)).toEqual(shape);
        const keys = batches.flat().map((row) => (JSON.parse(row) as { key: string }).key);
        expect(keys.sort()).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6']);
      }
    });

    it('closes its cursor when the reader stops early, with a batch still read ahead', async () => {
      const [early, again] = await inSnapshot(async (scope) => {
        const first = await collect(scope, 2, 1);
        // The same cursor name in the same transaction: refused had the first one stayed open.
        return [first, await collect(scope, 2)];
      });
      expect(early.map((b) => b.length)).toEqual([2]);
      expect(again.flat()).toHaveLength(7);
    });
  });
}
