import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findService } from '../../../test/support/services.ts';
import { type Cache, maxCacheTtlMs } from '../../ports/cache.port.ts';
import { MemcachedCache } from './cache.memcached.ts';
import { MemoryCache } from './cache.memory.ts';
import { RedisCache } from './cache.redis.ts';

const memcached = await findService('memcached');
const redis = await findService('redis');

interface Implementation {
  title: string;
  skip: boolean;
  open(): Cache;
  /** A client for a server that is not there, to prove failures are fast and typed. */
  openUnreachable?(): Cache;
}

const implementations: Implementation[] = [
  { title: 'MemoryCache', skip: false, open: () => new MemoryCache({ maxEntries: 10_000 }) },
  {
    title: `MemcachedCache${memcached.skipReason}`,
    skip: !memcached.url,
    open: () => new MemcachedCache({ url: memcached.url! }),
    openUnreachable: () => new MemcachedCache({ url: 'memcached://127.0.0.1:1' }),
  },
  {
    title: `RedisCache${redis.skipReason}`,
    skip: !redis.url,
    open: () => new RedisCache({ url: redis.url! }),
    openUnreachable: () => new RedisCache({ url: 'redis://127.0.0.1:1' }),
  },
];

/** A TTL just over a second: memcached rounds it up to 2 s and still keeps it at least 1 s. */
const shortTtlMs = 1_100;
const longTtlMs = 60_000;

for (const implementation of implementations) {
  describe.skipIf(implementation.skip)(`Cache contract: ${implementation.title}`, () => {
    let cache: Cache;
    /** A fresh key per test, under a prefix of its own per run, so parallel runs cannot collide. */
    const runPrefix = `strongroom-test:${randomUUID()}:`;
    const freshKey = () => `${runPrefix}${randomUUID()}`;

    beforeAll(() => {
      cache = implementation.open();
    });
    afterAll(() => cache?.close());

    it('answers a ping', async () => {
      await cache.ping();
    });

    it('returns undefined for a missing key', async () => {
      expect(await cache.get(freshKey())).toBeUndefined();
    });

    it('stores binary values exactly and strings as UTF-8', async () => {
      const binaryKey = freshKey();
      const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await cache.set(binaryKey, new Uint8Array(everyByte), longTtlMs);
      expect(await cache.get(binaryKey)).toEqual(everyByte);

      const textKey = freshKey();
      await cache.set(textKey, 'sessión ✓\r\nEND\r\n', longTtlMs);
      expect((await cache.get(textKey))?.toString('utf8')).toBe('sessión ✓\r\nEND\r\n');
    });

    it('overwrites on set and forgets on delete, idempotently', async () => {
      const key = freshKey();
      await cache.set(key, 'one', longTtlMs);
      await cache.set(key, 'two', longTtlMs);
      expect((await cache.get(key))?.toString()).toBe('two');
      await cache.delete(key);
      expect(await cache.get(key)).toBeUndefined();
      await cache.delete(key);
    });

    // The two TTL tests wait on the clock, so they wait side by side.
    it.concurrent('expires entries after their TTL', async () => {
      const key = freshKey();
      await cache.set(key, 'short-lived', shortTtlMs);
      const added = freshKey();
      expect(await cache.add(added, 'short-lived', shortTtlMs)).toBe(true);
      await sleep(500);
      expect((await cache.get(key))?.toString()).toBe('short-lived');
      await waitUntilGone(cache, key);
      await waitUntilGone(cache, added);
      expect(await cache.add(added, 'again', longTtlMs)).toBe(true); // the slot is free once expired
    });

    it.concurrent('keeps the first TTL of a counter, so its window is fixed', async () => {
      const key = freshKey();
      expect(await cache.increment(key, shortTtlMs)).toBe(1);
      // A later increment with a long TTL must not extend the window: the counter still expires.
      expect(await cache.increment(key, longTtlMs)).toBe(2);
      await waitUntilGone(cache, key);
      expect(await cache.increment(key, longTtlMs)).toBe(1);
    });

    it('adds only when absent', async () => {
      const key = freshKey();
      expect(await cache.add(key, 'first', longTtlMs)).toBe(true);
      expect(await cache.add(key, 'second', longTtlMs)).toBe(false);
      expect((await cache.get(key))?.toString()).toBe('first');
    });

    it('lets exactly one of many concurrent adds win', async () => {
      const key = freshKey();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => cache.add(key, `v${i}`, longTtlMs)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      expect((await cache.get(key))?.toString()).toBe(`v${results.indexOf(true)}`);
    });

    it('counts from 1', async () => {
      const key = freshKey();
      expect(await cache.increment(key, longTtlMs)).toBe(1);
      expect(await cache.increment(key, longTtlMs)).toBe(2);
      expect(await cache.increment(key, longTtlMs)).toBe(3);
    });

    it('increments by a given step, starting a missing counter at that step, and refuses a step that is not a positive whole number', async () => {
      const key = freshKey();
      expect(await cache.increment(key, longTtlMs, 5)).toBe(5);
      expect(await cache.increment(key, longTtlMs)).toBe(6);
      expect(await cache.increment(key, longTtlMs, 94)).toBe(100);
      for (const by of [0, -1, 1.5, Number.NaN, 2 ** 60]) {
        await expect(cache.increment(key, longTtlMs, by)).rejects.toMatchObject({
          code: 'invalid_cache_increment',
        });
      }
      expect(await cache.increment(key, longTtlMs)).toBe(101);
    });

    it('sums 50 concurrent increments exactly', async () => {
      const key = freshKey();
      const counts = await Promise.all(Array.from({ length: 50 }, () => cache.increment(key, longTtlMs)));
      expect([...counts].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(await cache.increment(key, longTtlMs)).toBe(51);
    });

    it('rejects malformed keys with invalid_cache_key', async () => {
      for (const key of ['', 'has space', 'line\nbreak', 'nul\u0000', 'ключ', 'k'.repeat(201), 'a\tb']) {
        const rejected = { code: 'invalid_cache_key' };
        await expect(cache.get(key)).rejects.toMatchObject(rejected);
        await expect(cache.set(key, 'v', longTtlMs)).rejects.toMatchObject(rejected);
        await expect(cache.add(key, 'v', longTtlMs)).rejects.toMatchObject(rejected);
        await expect(cache.delete(key)).rejects.toMatchObject(rejected);
        await expect(cache.increment(key, longTtlMs)).rejects.toMatchObject(rejected);
      }
    });

    it('rejects TTLs that are not 1 ms to 30 days with invalid_cache_ttl', async () => {
      const key = freshKey();
      for (const ttlMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, maxCacheTtlMs + 1]) {
        const rejected = { code: 'invalid_cache_ttl' };
        await expect(cache.set(key, 'v', ttlMs)).rejects.toMatchObject(rejected);
        await expect(cache.add(key, 'v', ttlMs)).rejects.toMatchObject(rejected);
        await expect(cache.increment(key, ttlMs)).rejects.toMatchObject(rejected);
      }
      expect(await cache.get(key)).toBeUndefined();
      await cache.set(key, 'longest', maxCacheTtlMs); // exactly 30 days is allowed
      expect((await cache.get(key))?.toString()).toBe('longest');
      await cache.delete(key);
    });

    const { openUnreachable } = implementation;
    if (!openUnreachable) return;
    it('fails fast with cache_unavailable when the server is unreachable', async () => {
      const unreachable = openUnreachable();
      try {
        const operations = [
          () => unreachable.get('some:key'),
          () => unreachable.set('some:key', 'v', longTtlMs),
          () => unreachable.add('some:key', 'v', longTtlMs),
          () => unreachable.increment('some:key', longTtlMs),
          () => unreachable.ping(),
        ];
        for (const operation of operations) {
          const startedMs = Date.now();
          await expect(operation()).rejects.toMatchObject({ code: 'cache_unavailable' });
          expect(Date.now() - startedMs).toBeLessThan(2_500);
        }
      } finally {
        await unreachable.close();
      }
    });
  });
}

describe('cache URLs', () => {
  it('rejects memcached URLs with credentials or junk', () => {
    expect(() => new MemcachedCache({ url: 'memcached://user:pass@127.0.0.1:11211' })).toThrow(/credentials/);
    expect(() => new MemcachedCache({ url: 'redis://127.0.0.1:6379' })).toThrow(/memcached URL/);
    expect(() => new MemcachedCache({ url: 'memcached://a b:1' })).toThrow(/memcached URL/);
  });

  it('rejects Redis URLs of another scheme', () => {
    expect(() => new RedisCache({ url: 'memcached://127.0.0.1:11211' })).toThrow(/Redis URL/);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until the key is gone; memcached's one-second clock makes the exact moment vary. */
async function waitUntilGone(cache: Cache, key: string, timeoutMs = 3_500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await cache.get(key)) !== undefined) {
    if (Date.now() > deadline) throw new Error(`${key} outlived its TTL`);
    await sleep(100);
  }
}
