import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { findService } from '../../../test/support/services.ts';
import { MemcachedCache } from '../../adapters/cache/cache.memcached.ts';
import { MemoryCache } from '../../adapters/cache/cache.memory.ts';
import { RedisCache } from '../../adapters/cache/cache.redis.ts';
import type { Core } from '../../main/compose.ts';
import type { Cache } from '../../ports/cache.port.ts';
import { TenantCache } from './tenant-cache.ts';

const memcached = await findService('memcached');
const redis = await findService('redis');
const pglite = (await testDatabaseKinds()).find((kind) => kind.name === 'pglite')!;

/** The tenant-scoped view of the cache over each adapter: the rules hold whatever stores the bytes. */
const adapters: Array<{ title: string; skip: boolean; open(): Cache }> = [
  { title: 'memory', skip: false, open: () => new MemoryCache() },
  {
    title: `memcached${memcached.skipReason}`,
    skip: !memcached.url,
    open: () => new MemcachedCache({ url: memcached.url! }),
  },
  { title: `Redis${redis.skipReason}`, skip: !redis.url, open: () => new RedisCache({ url: redis.url! }) },
];

for (const adapter of adapters) {
  describe.skipIf(adapter.skip)(`TenantCache over ${adapter.title}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let cache: Cache;
    let temporary: TenantCache;
    let a: string;
    let b: string;

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(pglite));
      cache = adapter.open();
      temporary = new TenantCache({ cache, keys: core.keys });
      const suffix = Math.random().toString(36).slice(2, 8);
      a = (await core.tenants.create({ slug: `tc-a-${suffix}`, name: 'A', ownerEmail: 'o@a.test' })).tenant
        .id;
      b = (await core.tenants.create({ slug: `tc-b-${suffix}`, name: 'B', ownerEmail: 'o@b.test' })).tenant
        .id;
    });
    afterAll(async () => {
      await cache?.close();
      await testDb?.close();
    });

    it('prefixes every key with the tenant id and hashes the rest, so no client-chosen text is in the key', () => {
      const key = temporary.key(a, 'idempotency', 'project', 'user', 'order 42 / ümlaut');
      expect(key).toMatch(new RegExp(`^t:${a}:idempotency:[A-Za-z0-9_-]{43}$`));
      expect(temporary.key(a, 'idempotency', 'ab', 'c')).not.toBe(temporary.key(a, 'idempotency', 'a', 'bc'));
      expect(temporary.key(a, 'rate', 'x')).not.toBe(temporary.key(b, 'rate', 'x'));
    });

    it("seals values with the tenant's key, bound to their key: moved, swapped or tampered values do not open", async () => {
      const keyA = temporary.key(a, 'idempotency', 'canary');
      const keyB = temporary.key(b, 'idempotency', 'canary');
      await temporary.setSealed(a, keyA, 'tenant-a-canary-value', 60_000);
      expect(await temporary.getSealed(a, keyA)).toBe('tenant-a-canary-value');
      const stored = (await cache.get(keyA))!.toString('utf8');
      expect(stored).not.toContain('canary');
      // Copied under B's key, or read as B: refused (undefined, so the caller asks the database).
      await cache.set(keyB, stored, 60_000);
      expect(await temporary.getSealed(b, keyB)).toBeUndefined();
      expect(await temporary.getSealed(b, keyA)).toBeUndefined();
      // One flipped character: refused.
      const flipped = stored.slice(0, -3) + (stored.at(-3) === 'A' ? 'B' : 'A') + stored.slice(-2);
      await cache.set(keyA, flipped, 60_000);
      expect(await temporary.getSealed(a, keyA)).toBeUndefined();
      expect(await temporary.getSealed(a, temporary.key(a, 'idempotency', 'absent'))).toBeUndefined();
    });

    it('counts by steps per tenant, each counter its own', async () => {
      const key = temporary.key(a, 'rate', String(Date.now()));
      expect(await temporary.increment(key, 5_000, 3)).toBe(3);
      expect(await temporary.increment(key, 5_000)).toBe(4);
      expect(await temporary.increment(temporary.key(b, 'rate', String(Date.now())), 5_000)).toBe(1);
    });

    it('refuses an entry without a TTL', async () => {
      await expect(temporary.setSealed(a, temporary.key(a, 'usage', 'x'), 'v', 0)).rejects.toMatchObject({
        code: 'invalid_cache_ttl',
      });
    });
  });
}
