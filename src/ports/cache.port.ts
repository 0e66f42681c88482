import { defineError } from '../platform/errors.ts';

/**
 * Temporary data only: sessions, rate counters, one-time tokens, idempotency keys, upload state.
 * Nothing here is ever the only copy of anything durable. Every entry has a TTL; there is no
 * "forever". Implementations: in-process LRU (default), memcached, Redis.
 */
export interface Cache {
  readonly kind: 'memory' | 'memcached' | 'redis';
  get(key: string): Promise<Buffer | undefined>;
  set(key: string, value: Uint8Array | string, ttlMs: number): Promise<void>;
  /** Sets only if absent; true when this call created the entry (one-time tokens, idempotency). */
  add(key: string, value: Uint8Array | string, ttlMs: number): Promise<boolean>;
  delete(key: string): Promise<void>;
  /**
   * Adds `by` (a positive whole number, default 1) and returns the new count; a missing counter
   * starts at `by` with `ttlMs`, and later increments keep that expiry (a fixed window, for rate
   * limits).
   */
  increment(key: string, ttlMs: number, by?: number): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const cacheErrors = {
  invalidKey: defineError('invalid_cache_key', 'invalid', 'A cache key is malformed.', (reason: string) => ({
    message: `invalid cache key: ${reason}`,
  })),
  invalidTtl: defineError(
    'invalid_cache_ttl',
    'invalid',
    'A cache TTL must be a whole number of milliseconds between 1 and 30 days.',
  ),
  invalidIncrement: defineError(
    'invalid_cache_increment',
    'invalid',
    'A cache counter is incremented by a positive whole number.',
  ),
  unavailable: defineError(
    'cache_unavailable',
    'unavailable',
    'The cache cannot be reached.',
    (cause?: unknown) => ({ cause }),
  ),
};

/** 30 days: memcached reads larger expiries as absolute Unix times, so no adapter accepts more. */
export const maxCacheTtlMs = 30 * 24 * 60 * 60 * 1000;

const keyPattern = /^[A-Za-z0-9:_.\-/]{1,200}$/;

/** memcached forbids spaces and control characters and caps keys at 250 bytes; we are stricter. */
export function assertCacheKey(key: string): void {
  if (typeof key !== 'string' || !keyPattern.test(key)) {
    throw cacheErrors.invalidKey('1-200 characters of [A-Za-z0-9:_.-/]');
  }
}

/** An increment is a positive whole number (memcached counters are unsigned 64-bit). */
export function assertIncrement(by: number): void {
  if (!Number.isSafeInteger(by) || by < 1) throw cacheErrors.invalidIncrement();
}

export function assertCacheTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > maxCacheTtlMs) throw cacheErrors.invalidTtl();
}
