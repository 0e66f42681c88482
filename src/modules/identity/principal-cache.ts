import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { decryptField, encryptField, readFieldKeyVersion } from '../../crypto/field.ts';
import type { Clock } from '../../platform/clock.ts';
import type { Cache } from '../../ports/cache.port.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import type { UserPrincipal } from './identity.service.ts';
import type { User } from './user.repository.ts';

/** What `authenticate` answers for a credential, as the cache keeps it. */
export interface Authenticated {
  principal: UserPrincipal;
  user: User;
}

/** Reads only the credential lists it needs to invalidate (the identity service supplies them). */
export interface CredentialHashes {
  /** Every live credential of the tenant (sessions and API keys), from the control-plane index. */
  ofTenant(tenantId: string): Promise<Buffer[]>;
}

/** A cached principal is trusted this long at most; explicit invalidation makes changes immediate. */
const entryTtlMs = 15_000;

/**
 * Each node also keeps what it read for at most this long in its own memory, so a busy credential
 * costs no cache round trip at all. This bounds how long another node's invalidation takes to reach
 * this one: revocation is immediate on the node that made it and within a second everywhere.
 */
export const localTtlMs = 1_000;

/**
 * How long an invalidation blocks re-caching. The tombstone is written before the change commits and
 * covers it: a request that read the old state from the database cannot put it back in the cache
 * (fills only `add`), and after the tombstone expires the database already has the new state.
 */
const tombstoneTtlMs = 10_000;
const tombstone = '-';

/**
 * The principal behind a token, kept for a few seconds in the shared cache (and for at most a second
 * in each node's memory) so an authenticated request costs at most one cache read instead of three
 * database round trips.
 *
 * Correctness rests on three rules:
 * - every change that could alter what a credential may do (logout, key revocation, disabling or
 *   re-roling a user, resetting MFA, suspending or deleting a tenant, changing the MFA requirement)
 *   calls `forget` for the affected credentials *before* it commits, and fails if the cache cannot
 *   be written, so nothing is revoked in the database while still honoured from the cache;
 * - only `add` fills, so a fill that raced an invalidation loses to the tombstone;
 * - a cache that cannot be read fails the request closed (`cache_unavailable`), never open.
 *
 * Entries name the tenant in the clear and seal the rest (the user's email and name are tenant data)
 * with a key derived from the tenant's data key, bound to the cache key. The cache key is a hash of
 * the stored token hash, so the cache holds nothing that the database does not.
 *
 * Only on when every node sees the same cache: a shared cache (Redis, memcached), or the embedded
 * database, which only one process can open. With a per-process cache in front of a Postgres server
 * there may be other nodes whose entries this node could not clear, so every request asks the
 * database.
 */
export class PrincipalCache {
  readonly enabled: boolean;
  readonly #cache: Cache;
  readonly #keys: TenantKeyService;
  readonly #clock: Clock;
  readonly #credentials: CredentialHashes;
  readonly #local = new LRUCache<string, Authenticated & { validUntil: number }>({ max: 10_000 });

  constructor(deps: {
    cache: Cache;
    keys: TenantKeyService;
    clock: Clock;
    credentials: CredentialHashes;
    enabled: boolean;
  }) {
    this.enabled = deps.enabled;
    this.#cache = deps.cache;
    this.#keys = deps.keys;
    this.#clock = deps.clock;
    this.#credentials = deps.credentials;
  }

  /** The cached principal, or undefined (absent, invalidated, expired or unreadable: ask the database). */
  async read(tokenHash: Buffer): Promise<Authenticated | undefined> {
    if (!this.enabled) return undefined;
    const key = cacheKey(tokenHash);
    const local = this.#local.get(key);
    const now = this.#clock.now().getTime();
    if (local && local.validUntil > now) return { principal: local.principal, user: local.user };
    // An unreachable cache throws cache_unavailable: fail closed.
    const stored = (await this.#cache.get(key))?.toString('utf8');
    if (!stored || stored === tombstone) return undefined;
    const space = stored.indexOf(' ');
    const tenantId = stored.slice(0, space);
    const sealed = stored.slice(space + 1);
    try {
      const dataKey = await this.#keys.getDataKey(tenantId, readFieldKeyVersion(sealed));
      const entry = JSON.parse(
        decryptField(() => dataKey.bytes, sealed, fieldContext(tenantId, key)),
      ) as SerializedEntry;
      if (entry.validUntil <= now) return undefined;
      const found = {
        principal: entry.principal,
        user: { ...entry.user, createdAt: new Date(entry.user.createdAt) },
      };
      this.#local.set(key, { ...found, validUntil: Math.min(entry.validUntil, now + localTtlMs) });
      return found;
    } catch {
      // Tampered, or sealed under a key since destroyed: treat as absent; the database decides.
      return undefined;
    }
  }

  /**
   * Remembers a principal until `validUntil` (the credential's own expiry) or the entry TTL, whichever
   * comes first. Never overwrites: a tombstone written by a concurrent invalidation wins. Best effort.
   */
  async remember(tokenHash: Buffer, found: Authenticated, validUntil: Date): Promise<void> {
    if (!this.enabled) return;
    const now = this.#clock.now().getTime();
    const ttlMs = Math.min(entryTtlMs, validUntil.getTime() - now);
    if (ttlMs < 1) return;
    const key = cacheKey(tokenHash);
    const { tenantId } = found.principal;
    const entry: SerializedEntry = {
      principal: found.principal,
      user: { ...found.user, createdAt: found.user.createdAt.toISOString() },
      validUntil: now + ttlMs,
    };
    try {
      const dataKey = await this.#keys.getDataKey(tenantId);
      const sealed = encryptField(dataKey, JSON.stringify(entry), fieldContext(tenantId, key));
      await this.#cache.add(key, `${tenantId} ${sealed}`, Math.ceil(ttlMs));
    } catch {
      // A fill that fails costs only speed: the next request asks the database again.
    }
  }

  /**
   * Stops serving these credentials from the cache on every node. Call before the change commits;
   * throws `cache_unavailable` if the cache cannot be written, so the caller changes nothing.
   */
  async forget(tokenHashes: readonly Buffer[]): Promise<void> {
    if (!this.enabled || tokenHashes.length === 0) return;
    for (const hash of tokenHashes) this.#local.delete(cacheKey(hash));
    for (let i = 0; i < tokenHashes.length; i += 256) {
      await Promise.all(
        tokenHashes
          .slice(i, i + 256)
          .map((hash) => this.#cache.set(cacheKey(hash), tombstone, tombstoneTtlMs)),
      );
    }
  }

  /** `forget` for every live credential of a tenant (suspension, deletion, tenant-wide settings). */
  async forgetTenant(tenantId: string): Promise<void> {
    if (!this.enabled) return;
    await this.forget(await this.#credentials.ofTenant(tenantId));
  }
}

interface SerializedEntry {
  principal: UserPrincipal;
  user: Omit<User, 'createdAt'> & { createdAt: string };
  validUntil: number;
}

function cacheKey(tokenHash: Buffer): string {
  return `auth:${createHash('sha256').update('strongroom/principal-cache/v1').update(tokenHash).digest('hex')}`;
}

function fieldContext(tenantId: string, key: string) {
  return { tenantId, table: 'cache', column: 'principal', rowId: key };
}
