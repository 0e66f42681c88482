import type { Clock } from '../../platform/clock.ts';
import type { TenantCache } from '../temporary/tenant-cache.ts';
import { quotaErrors } from './quota.errors.ts';
import type { TenantLimits } from './quota.service.ts';

/** A node adds its local count to the shared counter at least this often while a tenant is busy. */
const flushEveryMs = 50;

interface Window {
  /** The second this window counts (ms since the epoch / 1000, floored). */
  second: number;
  /** The tenant's count across all nodes, as the shared counter last answered. */
  shared: number;
  /** Admitted here and not yet added to the shared counter. */
  pending: number;
  /** Admitted here and on their way to the shared counter (a flush in flight). */
  sending: number;
  lastFlushAt: number;
  flushing: Promise<void> | undefined;
  /** The last flush failed: the next request must flush and wait for it (fail closed). */
  failed: boolean;
}

/**
 * Fair service between tenants: each tenant gets its own request rate (across all nodes) and its own
 * cap on requests in progress (per node), so one tenant's flood is refused at the door, before it
 * costs a database query, and never eats another tenant's share.
 *
 * The rate is a fixed one-second window counted in the shared cache (`t:<tenant>:rate:…`). A node
 * does not ask the cache on every request: it counts locally and adds its count to the shared
 * counter every `flushEveryMs` or every 1/50 of the limit, whichever comes first, and judges each
 * request by the last shared total plus its own unflushed count. A tenant can therefore exceed its
 * rate by what other nodes admitted since their last flush: at most about 1/50 of the limit, or
 * 50 ms of traffic, per node. If the cache cannot be reached, the request that needed the flush fails
 * with `cache_unavailable`, and so does every later one until a flush succeeds: closed, not open.
 */
export class RequestLimiter {
  readonly #temporary: TenantCache;
  readonly #limitsOf: (tenantId: string) => Promise<TenantLimits>;
  readonly #clock: Clock;
  readonly #windows = new Map<string, Window>();
  readonly #inFlight = new Map<string, number>();

  constructor(deps: {
    temporary: TenantCache;
    limitsOf: (tenantId: string) => Promise<TenantLimits>;
    clock: Clock;
  }) {
    this.#temporary = deps.temporary;
    this.#limitsOf = deps.limitsOf;
    this.#clock = deps.clock;
  }

  /**
   * Admits one request of the tenant or throws `rate_limited` (with Retry-After seconds). The
   * returned function must be called once when the request ends; later calls do nothing.
   */
  async admit(tenantId: string): Promise<() => void> {
    const limits = await this.#limitsOf(tenantId);
    const inFlight = this.#inFlight.get(tenantId) ?? 0;
    if (inFlight >= limits.concurrentRequests) throw quotaErrors.rateLimited(1, 'concurrency');
    await this.#count(tenantId, limits.requestsPerSecond);
    // Counted only once admitted: a refused request holds no slot.
    this.#inFlight.set(tenantId, (this.#inFlight.get(tenantId) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#inFlight.get(tenantId) ?? 1) - 1;
      if (left <= 0) this.#inFlight.delete(tenantId);
      else this.#inFlight.set(tenantId, left);
    };
  }

  /** Requests of this tenant in progress on this node (for metrics and tests). */
  inFlight(tenantId: string): number {
    return this.#inFlight.get(tenantId) ?? 0;
  }

  async #count(tenantId: string, limit: number): Promise<void> {
    const now = this.#clock.now().getTime();
    const second = Math.floor(now / 1000);
    let window = this.#windows.get(tenantId);
    if (!window || window.second !== second) {
      const failed = window?.failed ?? false;
      window = { second, shared: 0, pending: 0, sending: 0, lastFlushAt: now, flushing: undefined, failed };
      this.#windows.set(tenantId, window);
      this.#forgetIdleWindows(second);
    }
    if (window.failed) {
      // The cache was unreachable: this request goes with the flush and waits for it, so it fails
      // (cache_unavailable) for as long as the cache stays away.
      window.pending++;
      await this.#flush(tenantId, window);
      if (window.shared > limit) throw quotaErrors.rateLimited(1, 'rate');
      return;
    }
    // Refused requests are not counted: a flood costs no cache round trips once it is over the limit.
    // The window ends within a second, hence Retry-After: 1.
    if (window.shared + window.sending + window.pending >= limit) throw quotaErrors.rateLimited(1, 'rate');
    window.pending++;
    const batch = Math.max(1, Math.floor(limit / 50));
    if (!window.flushing && (window.pending >= batch || now - window.lastFlushAt >= flushEveryMs)) {
      await this.#flush(tenantId, window);
    }
  }

  async #flush(tenantId: string, window: Window): Promise<void> {
    if (window.flushing) return window.flushing;
    const count = window.pending;
    if (count === 0) return;
    window.pending = 0;
    window.sending = count;
    window.lastFlushAt = this.#clock.now().getTime();
    const key = this.#temporary.key(tenantId, 'rate', String(window.second));
    window.flushing = this.#temporary
      .increment(key, 2_000, count)
      .then(
        (total) => {
          window.shared = Math.max(window.shared, total);
          window.failed = false;
        },
        (error: unknown) => {
          window.pending += count;
          window.failed = true;
          throw error;
        },
      )
      .finally(() => {
        window.sending = 0;
        window.flushing = undefined;
      });
    return window.flushing;
  }

  /** Windows of past seconds with nothing left to flush are dropped, so idle tenants cost no memory. */
  #forgetIdleWindows(second: number): void {
    if (this.#windows.size < 1_000) return;
    for (const [tenantId, window] of this.#windows) {
      if (window.second < second && window.pending === 0 && !window.flushing && !window.failed) {
        this.#windows.delete(tenantId);
      }
    }
  }
}
