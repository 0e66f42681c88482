import { LRUCache } from 'lru-cache';
import { assertCacheKey, assertCacheTtl, assertIncrement, type Cache } from '../../ports/cache.port.ts';

export interface MemoryCacheOptions {
  /** Bounds memory: past it the least recently used entries go first. Default 50,000. */
  maxEntries?: number;
}

/**
 * In-process cache for a single node. Entries live in this process only, so with several app nodes
 * a shared cache (memcached, Redis) must be configured, or rate limits and one-time tokens are
 * per node.
 */
export class MemoryCache implements Cache {
  readonly kind = 'memory';
  readonly #entries: LRUCache<string, Buffer>;

  constructor(options: MemoryCacheOptions = {}) {
    this.#entries = new LRUCache({ max: options.maxEntries ?? 50_000 });
  }

  async get(key: string): Promise<Buffer | undefined> {
    assertCacheKey(key);
    const value = this.#entries.get(key);
    // A copy, so a caller that mutates what it got cannot change what the next caller gets.
    return value && Buffer.from(value);
  }

  async set(key: string, value: Uint8Array | string, ttlMs: number): Promise<void> {
    assertCacheKey(key);
    assertCacheTtl(ttlMs);
    this.#entries.set(key, Buffer.from(value), { ttl: ttlMs });
  }

  async add(key: string, value: Uint8Array | string, ttlMs: number): Promise<boolean> {
    assertCacheKey(key);
    assertCacheTtl(ttlMs);
    // Check and set run in one synchronous step, so concurrent adds cannot both win.
    if (this.#entries.has(key)) return false;
    this.#entries.set(key, Buffer.from(value), { ttl: ttlMs });
    return true;
  }

  async delete(key: string): Promise<void> {
    assertCacheKey(key);
    this.#entries.delete(key);
  }

  async increment(key: string, ttlMs: number, by = 1): Promise<number> {
    assertCacheKey(key);
    assertCacheTtl(ttlMs);
    assertIncrement(by);
    const current = this.#entries.get(key);
    const count = (current === undefined ? 0 : parseCounter(current)) + by;
    // Stored as decimal text, as memcached and Redis store counters. `noUpdateTTL`: an existing
    // counter keeps the expiry it was created with (a fixed window).
    this.#entries.set(key, Buffer.from(String(count)), { ttl: ttlMs, noUpdateTTL: true });
    return count;
  }

  ping(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }
}

function parseCounter(value: Buffer): number {
  const count = Number(value.toString());
  if (!Number.isSafeInteger(count)) throw new Error('cannot increment a cache entry that is not a counter');
  return count;
}
