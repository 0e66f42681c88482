import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import type { Core } from '../main/compose.ts';
import { cachedStatement } from './statement-cache.ts';
import { tenantDb } from './tenant-tables.ts';

const settingOf = cachedStatement((db, p: { key: string }) =>
  tenantDb(db).selectFrom('settings').select(['key', 'value']).where('key', '=', p.key).limit(5),
);

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(
    `statements compiled once per tenant schema on ${kind.name}${kind.skipReason}`,
    () => {
      let core: Core;
      let testDb: TestDatabase;
      const tenants: string[] = [];

      beforeAll(async () => {
        ({ core, testDb } = await openTestCore(kind));
        for (const slug of ['cache-a', 'cache-b']) {
          const { tenant } = await core.tenants.create({
            slug,
            name: slug,
            ownerEmail: `owner@${slug}.test`,
          });
          tenants.push(tenant.id);
          await core.withTenant(tenant.id, (scope) =>
            tenantDb(scope.db)
              .insertInto('settings')
              .values({ key: 'owner', value: JSON.stringify(slug) })
              .execute(),
          );
        }
      });
      afterAll(async () => testDb?.close());

      it("runs each tenant's statement against its own schema, whichever tenant compiled first", async () => {
        for (const round of [1, 2]) {
          for (const [i, tenantId] of tenants.entries()) {
            const rows = await core.withTenant(tenantId, (scope) => settingOf(scope.db, { key: 'owner' }));
            expect(rows, `round ${round}`).toEqual([
              { key: 'owner', value: i === 0 ? 'cache-a' : 'cache-b' },
            ]);
          }
        }
        // And with values it has not seen: the placeholders are parameters, not baked in.
        const none = await core.withTenant(tenants[0], (scope) =>
          settingOf(scope.db, { key: "x' or true --" }),
        );
        expect(none).toEqual([]);
      });

      it('runs on read-only scopes (the read pool on a Postgres server) too', async () => {
        const rows = await core.withTenant(tenants[1], (scope) => settingOf(scope.db, { key: 'owner' }), {
          readOnly: true,
        });
        expect(rows).toEqual([{ key: 'owner', value: 'cache-b' }]);
      });

      it('refuses a statement that transforms a value instead of passing it as a parameter', async () => {
        const lossy = cachedStatement((db, p: { key: string }) =>
          tenantDb(db).selectFrom('settings').select('key').where('key', '=', String(p.key)),
        );
        await expect(
          core.withTenant(tenants[0], (scope) => lossy(scope.db, { key: 'owner' })),
        ).rejects.toThrow(/key did not reach it as a parameter/);
        // A value the statement never uses is a mistake too (the call would silently ignore it).
        const forgetful = cachedStatement((db, p: { key: string; owner: string }) =>
          tenantDb(db).selectFrom('settings').select('key').where('key', '=', p.key),
        );
        await expect(
          core.withTenant(tenants[0], (scope) => forgetful(scope.db, { key: 'owner', owner: 'cache-a' })),
        ).rejects.toThrow(/owner did not reach it as a parameter/);
      });
    },
  );
}
