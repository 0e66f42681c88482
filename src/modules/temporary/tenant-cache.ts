import { createHash } from 'node:crypto';
import { decryptField, encryptField, readFieldKeyVersion } from '../../crypto/field.ts';
import type { Cache } from '../../ports/cache.port.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';

/** What a tenant's temporary entry is for; part of every key, so two uses never collide. */
export type TenantCachePurpose = 'idempotency' | 'rate' | 'usage';

/**
 * Temporary data that belongs to one tenant, in the shared cache, under three rules:
 * - every key starts with the tenant id (`t:<tenant id>:<purpose>:…`), so a tenant's entries are
 *   recognisable and never collide with another's; the rest of the key is a hash, so nothing a client
 *   chose (an idempotency key, a project id) appears in the cache in the clear;
 * - values that say anything about tenant data are sealed with a key derived from the tenant's data
 *   key, bound to the cache key: a value copied under another key or tenant does not open, and a
 *   crypto-shredded tenant's entries are unreadable at once;
 * - every entry has a TTL (the port refuses one without).
 * Losing the cache loses nothing durable: each use here has its durable copy, or is a counter.
 */
export class TenantCache {
  readonly #cache: Cache;
  readonly #keys: TenantKeyService;

  constructor(deps: { cache: Cache; keys: TenantKeyService }) {
    this.#cache = deps.cache;
    this.#keys = deps.keys;
  }

  /** The cache key for `parts`: the tenant id in the clear, the rest hashed. */
  key(tenantId: string, purpose: TenantCachePurpose, ...parts: string[]): string {
    const digest = createHash('sha256').update('strongroom/tenant-cache/v1');
    for (const part of parts) digest.update(`${Buffer.byteLength(part)}:${part}`);
    return `t:${tenantId}:${purpose}:${digest.digest('base64url')}`;
  }

  /**
   * The sealed value under `key`, opened; undefined when absent, or when it does not open (tampered,
   * moved, or sealed under a key since destroyed), so the caller asks the durable copy. A cache that
   * cannot be reached throws `cache_unavailable`.
   */
  async getSealed(tenantId: string, key: string): Promise<string | undefined> {
    const stored = (await this.#cache.get(key))?.toString('utf8');
    if (stored === undefined) return undefined;
    try {
      const dataKey = await this.#keys.getDataKey(tenantId, readFieldKeyVersion(stored));
      return decryptField(() => dataKey.bytes, stored, sealContext(tenantId, key));
    } catch {
      return undefined;
    }
  }

  async setSealed(tenantId: string, key: string, value: string, ttlMs: number): Promise<void> {
    const dataKey = await this.#keys.getDataKey(tenantId);
    await this.#cache.set(key, encryptField(dataKey, value, sealContext(tenantId, key)), ttlMs);
  }

  /** A counter (nothing about tenant data, so not sealed): see `Cache.increment`. */
  increment(key: string, ttlMs: number, by = 1): Promise<number> {
    return this.#cache.increment(key, ttlMs, by);
  }

  delete(key: string): Promise<void> {
    return this.#cache.delete(key);
  }
}

function sealContext(tenantId: string, key: string) {
  return { tenantId, table: 'cache', column: 'value', rowId: key };
}
