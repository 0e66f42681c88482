import { Redis } from 'ioredis';
import {
  assertCacheKey,
  assertCacheTtl,
  assertIncrement,
  type Cache,
  cacheErrors,
} from '../../ports/cache.port.ts';

export interface RedisCacheOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  url: string;
}

/** Redis through ioredis. Connects on first use, so constructing one opens no socket. */
export class RedisCache implements Cache {
  readonly kind = 'redis';
  readonly #redis: Redis;

  constructor(options: RedisCacheOptions) {
    if (!/^rediss?:\/\//.test(options.url))
      throw new Error('invalid Redis URL: expected redis:// or rediss://');
    this.#redis = new Redis(options.url, {
      lazyConnect: true,
      // Fail fast rather than queue: until the first connection a command waits for at most one
      // (re)connection attempt, and never more than 2 s; then the caller gets cache_unavailable.
      connectTimeout: 2_000,
      commandTimeout: 2_000,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt) => Math.min(attempt * 100, 500),
    });
    // Once connected, a command sent while the connection is down fails at once instead of waiting
    // for the next reconnection attempt.
    this.#redis.once('ready', () => {
      this.#redis.options.enableOfflineQueue = false;
    });
    // Connection errors also reject the commands they affect; without a listener ioredis would log
    // each one as "Unhandled error event".
    this.#redis.on('error', () => undefined);
  }

  async get(key: string): Promise<Buffer | undefined> {
    assertCacheKey(key);
    return this.#run(async () => (await this.#redis.getBuffer(key)) ?? undefined);
  }

  async set(key: string, value: Uint8Array | string, ttlMs: number): Promise<void> {
    assertCacheKey(key);
    assertCacheTtl(ttlMs);
    await this.#run(() => this.#redis.set(key, Buffer.from(value), 'PX', ttlMs));
  }

  async add(key: string, value: Uint8Array | string, ttlMs: number): Promise<boolean> {
    assertCacheKey(key);
    assertCacheTtl(ttlMs);
    return this.#run(
      async () => (await this.#redis.set(key, Buffer.from(value), 'PX', ttlMs, 'NX')) === 'OK',
    );
  }

  async delete(key: string): Promise<void> {
    assertCacheKey(key);
    await this.#run(() => this.#redis.del(key));
  }

  /**
   * One transaction: create the counter at 0 with the TTL only if it is absent (SET NX PX), then
   * INCR, which keeps whatever expiry the key has. So the TTL is set once, when the window opens.
   */
  async increment(key: string, ttlMs: number, by = 1): Promise<number> {
    assertCacheKey(key);
    assertCacheTtl(ttlMs);
    assertIncrement(by);
    return this.#run(async () => {
      const results = await this.#redis.multi().set(key, '0', 'PX', ttlMs, 'NX').incrby(key, by).exec();
      const [, incremented] = results ?? [];
      if (!incremented) throw new Error('Redis discarded the increment transaction');
      const [error, count] = incremented;
      if (error) throw error;
      return Number(count);
    });
  }

  async ping(): Promise<void> {
    await this.#run(() => this.#redis.ping());
  }

  async close(): Promise<void> {
    // QUIT lets pending replies arrive; a client that never connected (or lost the connection) is
    // just stopped, which also cancels reconnection timers that would keep the process alive.
    if (this.#redis.status === 'ready') await this.#redis.quit();
    else this.#redis.disconnect();
  }

  async #run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw cacheErrors.unavailable(error);
    }
  }
}
