import { Client } from 'memjs';
import {
  assertCacheKey,
  assertCacheTtl,
  assertIncrement,
  type Cache,
  cacheErrors,
} from '../../ports/cache.port.ts';

export interface MemcachedCacheOptions {
  /** `memcached://host[:port][,host[:port]...]`; keys are spread over the servers by hash. */
  url: string;
}

/**
 * memcached through memjs (binary protocol). memcached keeps time in whole seconds, so TTLs are
 * rounded up to the next second, and an entry may live up to a second less than that (its clock
 * ticks once a second).
 */
export class MemcachedCache implements Cache {
  readonly kind = 'memcached';
  readonly #client: Client;
  readonly #serverCount: number;

  constructor(options: MemcachedCacheOptions) {
    const servers = parseMemcachedUrl(options.url);
    this.#serverCount = servers.length;
    this.#client = Client.create(servers.join(','), {
      // memjs counts attempts here: 1 means no retry. A retried increment or add whose first reply
      // was lost would count twice or report "already there", so a failure surfaces instead.
      retries: 1,
      timeout: 1, // seconds per request
      conntimeout: 1, // seconds to connect
      // memjs logs every failure to the console; ours surface as cache_unavailable with the cause.
      logger: { log: () => undefined },
    });
  }

  async get(key: string): Promise<Buffer | undefined> {
    assertCacheKey(key);
    return this.#run(async () => (await this.#client.get(key)).value ?? undefined);
  }

  async set(key: string, value: Uint8Array | string, ttlMs: number): Promise<void> {
    assertCacheKey(key);
    const expires = toSeconds(ttlMs);
    await this.#run(() => this.#client.set(key, Buffer.from(value), { expires }));
  }

  async add(key: string, value: Uint8Array | string, ttlMs: number): Promise<boolean> {
    assertCacheKey(key);
    const expires = toSeconds(ttlMs);
    return this.#run(() => this.#client.add(key, Buffer.from(value), { expires }));
  }

  async delete(key: string): Promise<void> {
    assertCacheKey(key);
    await this.#run(() => this.#client.delete(key));
  }

  /**
   * The binary protocol's increment takes an initial value and an expiry that apply only when it
   * creates the counter, atomically on the server: no add-then-increment race, and later increments
   * keep the first expiry.
   */
  async increment(key: string, ttlMs: number, by = 1): Promise<number> {
    assertCacheKey(key);
    assertIncrement(by);
    const expires = toSeconds(ttlMs);
    return this.#run(async () => {
      const { value } = await this.#client.increment(key, by, { initial: by, expires });
      if (typeof value !== 'number') throw new Error('memcached returned no counter value');
      return value;
    });
  }

  /** Asks every server for its stats, so one dead server fails the check. */
  ping(): Promise<void> {
    return new Promise((resolve, reject) => {
      let pending = this.#serverCount;
      this.#client.stats((error) => {
        if (error) reject(cacheErrors.unavailable(error));
        else if (--pending === 0) resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.#client.close();
  }

  async #run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw cacheErrors.unavailable(error);
    }
  }
}

/** Whole seconds, rounded up so an entry never expires before its TTL by our rounding. */
function toSeconds(ttlMs: number): number {
  assertCacheTtl(ttlMs);
  return Math.ceil(ttlMs / 1000);
}

const serverPattern = /^[A-Za-z0-9.-]+(:\d{1,5})?$/;

function parseMemcachedUrl(url: string): string[] {
  const match = /^memcached:\/\/([^/?#]+)\/?$/.exec(url);
  if (!match?.[1]) throw new Error('invalid memcached URL: expected memcached://host:port[,host:port]');
  // No SASL: credentials do not belong in a URL, and memjs would take them from `user:pass@host`.
  if (match[1].includes('@'))
    throw new Error('invalid memcached URL: credentials are not accepted in the URL');
  const servers = match[1].split(',');
  for (const server of servers) {
    if (!serverPattern.test(server))
      throw new Error('invalid memcached URL: each server is host or host:port');
  }
  return servers;
}
