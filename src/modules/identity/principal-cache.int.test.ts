import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/support/cli.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { findService } from '../../../test/support/services.ts';
import { MemcachedCache } from '../../adapters/cache/cache.memcached.ts';
import { RedisCache } from '../../adapters/cache/cache.redis.ts';
import type { Core } from '../../main/compose.ts';
import { systemClock } from '../../platform/clock.ts';
import type { Cache } from '../../ports/cache.port.ts';
import { type Authenticated, PrincipalCache } from './principal-cache.ts';

const [pglite] = await testDatabaseKinds();
const shared: Array<{ name: string; skipReason: string; open: () => Cache }> = [
  await findService('redis').then((s) => ({
    name: 'Redis',
    skipReason: s.skipReason,
    open: () => new RedisCache({ url: s.url! }),
  })),
  await findService('memcached').then((s) => ({
    name: 'memcached',
    skipReason: s.skipReason,
    open: () => new MemcachedCache({ url: s.url! }),
  })),
];

for (const backend of shared) {
  describe.skipIf(backend.skipReason)(`the principal cache in ${backend.name}${backend.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let cache: Cache;
    let principals: PrincipalCache;
    let found: Authenticated;
    const later = () => new Date(Date.now() + 60_000);

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(pglite!));
      cache = backend.open();
      const tenant = (
        await core.tenants.create({ slug: 'kenny', name: 'Kenny', ownerEmail: 'k@roasters.test' })
      ).tenant;
      principals = new PrincipalCache({
        cache,
        keys: core.keys,
        clock: systemClock,
        credentials: { ofTenant: async () => [] },
        enabled: true,
      });
      found = {
        principal: {
          kind: 'user',
          tenantId: tenant.id,
          userId: '8f14e45f-ceea-467f-a0e6-7e8d0b3f0a11',
          role: 'admin',
          via: 'api_key',
          credentialId: '1679091c-5a88-4faf-9fb1-0ffc3ae91b11',
          scope: { access: 'read', projectIds: ['45c48cce-2e2d-4fbd-a4f2-3c5d9a8b7e61'] },
        },
        user: {
          id: '8f14e45f-ceea-467f-a0e6-7e8d0b3f0a11',
          email: 'CANARY-principal@roasters.test',
          displayName: 'Kenny Rogers',
          status: 'active',
          role: 'admin',
          createdAt: new Date('2026-11-01T10:00:00.000Z'),
        },
      };
    });
    afterAll(async () => {
      await cache?.close();
      await testDb?.close();
    });

    it('returns what it remembered, sealed: the cache holds neither the email nor the token hash', async () => {
      const tokenHash = randomBytes(32);
      expect(await principals.read(tokenHash)).toBeUndefined();
      await principals.remember(tokenHash, found, later());
      expect(await principals.read(tokenHash)).toEqual(found);
      const raw = await rawEntries(cache, tokenHash);
      expect(raw).not.toContain('CANARY-principal');
      expect(raw).not.toContain('Kenny Rogers');
      expect(raw).not.toContain(tokenHash.toString('hex'));
    });

    it('lets an invalidation win over a fill that read the old state', async () => {
      const tokenHash = randomBytes(32);
      await principals.remember(tokenHash, found, later());
      await principals.forget([tokenHash]);
      expect(await principals.read(tokenHash)).toBeUndefined();
      // A request that looked the credential up before the change tries to cache it: refused.
      await principals.remember(tokenHash, found, later());
      expect(await principals.read(tokenHash)).toBeUndefined();
    });

    it('never keeps an entry past the credential’s own expiry', async () => {
      const tokenHash = randomBytes(32);
      await principals.remember(tokenHash, found, new Date(Date.now() - 1));
      expect(await principals.read(tokenHash)).toBeUndefined();
      await principals.remember(tokenHash, found, new Date(Date.now() + 300));
      expect(await principals.read(tokenHash)).toEqual(found);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect(await principals.read(tokenHash)).toBeUndefined();
    });

    it('treats an entry copied to another token as absent', async () => {
      const [a, b] = [randomBytes(32), randomBytes(32)];
      await principals.remember(a, found, later());
      // Sealed entries are bound to their own key: a's entry under b's key does not open.
      await cache.set(keyOf(b), (await cache.get(keyOf(a)))!, 60_000);
      expect(await principals.read(b)).toBeUndefined();
      expect(await principals.read(a)).toEqual(found);
    });
  });
}

describe.skipIf(pglite!.skipReason)('the principal cache when the cache is unreachable', () => {
  let core: Core;
  let testDb: TestDatabase;
  let cache: Cache;
  let principals: PrincipalCache;

  beforeAll(async () => {
    ({ core, testDb } = await openTestCore(pglite!));
    cache = new RedisCache({ url: `redis://127.0.0.1:${await freePort()}` });
    principals = new PrincipalCache({
      cache,
      keys: core.keys,
      clock: systemClock,
      credentials: { ofTenant: async () => [randomBytes(32)] },
      enabled: true,
    });
  });
  afterAll(async () => {
    await cache?.close();
    await testDb?.close();
  });

  it('fails reads and invalidations closed, and lets a fill fail quietly', async () => {
    await expect(principals.read(randomBytes(32))).rejects.toMatchObject({ code: 'cache_unavailable' });
    await expect(principals.forget([randomBytes(32)])).rejects.toMatchObject({ code: 'cache_unavailable' });
    await expect(principals.forgetTenant('any')).rejects.toMatchObject({ code: 'cache_unavailable' });
    const tenantId = (await core.tenants.create({ slug: 'newman', name: 'N', ownerEmail: 'n@post.test' }))
      .tenant.id;
    const user = { id: tenantId, email: 'n@post.test', displayName: 'N', status: 'active' as const };
    await expect(
      principals.remember(
        randomBytes(32),
        {
          principal: {
            kind: 'user',
            tenantId,
            userId: user.id,
            role: 'member',
            via: 'session',
            credentialId: user.id,
          },
          user: { ...user, role: 'member', createdAt: new Date() },
        },
        new Date(Date.now() + 60_000),
      ),
    ).resolves.toBeUndefined();
  });
});

/** The cache key an entry for `tokenHash` lives under (mirrors PrincipalCache; checked by the first test). */
function keyOf(tokenHash: Buffer): string {
  return `auth:${createHash('sha256').update('strongroom/principal-cache/v1').update(tokenHash).digest('hex')}`;
}

async function rawEntries(cache: Cache, tokenHash: Buffer): Promise<string> {
  const value = await cache.get(keyOf(tokenHash));
  expect(value).toBeDefined();
  return value!.toString('utf8');
}
