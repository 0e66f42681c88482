import { createHash } from 'node:crypto';
import type { Cache } from '../../ports/cache.port.ts';
import { identityErrors } from './identity.errors.ts';

export interface ThrottlePolicy {
  /** Consecutive failures after which an account is locked (NIST 800-63B: at most 100). */
  lockoutAfterFailures: number;
  /** How long a lockout (and a run of failures) is remembered after the last failure. */
  lockoutMs: number;
  /** Failures before the backoff starts; then each failure doubles the wait, up to `maxBackoffMs`. */
  freeFailures: number;
  maxBackoffMs: number;
  /** Failed logins one source address may make in `ipWindowMs`, across all accounts. */
  ipFailuresPerWindow: number;
  ipWindowMs: number;
}

export const defaultThrottlePolicy: ThrottlePolicy = {
  lockoutAfterFailures: 100,
  lockoutMs: 60 * 60_000,
  freeFailures: 5,
  maxBackoffMs: 15 * 60_000,
  ipFailuresPerWindow: 300,
  ipWindowMs: 15 * 60_000,
};

/**
 * Login throttling in the shared cache, so it holds across every node when memcached or Redis is
 * configured. Keyed by tenant slug + email (not by user id: unknown accounts are throttled the same
 * way, so throttling cannot reveal which accounts exist) and by source address. If the cache cannot
 * be reached, logins are refused (`cache_unavailable`): throttling fails closed.
 */
export class LoginThrottle {
  readonly #cache: Cache;
  readonly #policy: ThrottlePolicy;
  readonly #now: () => number;

  constructor(deps: { cache: Cache; policy?: ThrottlePolicy; now?: () => number }) {
    this.#cache = deps.cache;
    this.#policy = deps.policy ?? defaultThrottlePolicy;
    this.#now = deps.now ?? Date.now;
  }

  /** Rejects with `login_throttled` (429, Retry-After) when this attempt must wait or is locked out. */
  async check(account: { tenant: string; email: string }, sourceIp: string | undefined): Promise<void> {
    const keys = this.#keys(account, sourceIp);
    const [failuresRaw, lastRaw, ipRaw] = await Promise.all([
      this.#cache.get(keys.failures),
      this.#cache.get(keys.lastFailure),
      keys.ip ? this.#cache.get(keys.ip) : Promise.resolve(undefined),
    ]);
    const failures = Number(failuresRaw?.toString() ?? 0);
    const lastFailureAt = Number(lastRaw?.toString() ?? 0);
    if (Number(ipRaw?.toString() ?? 0) >= this.#policy.ipFailuresPerWindow) {
      throw identityErrors.throttled(Math.ceil(this.#policy.ipWindowMs / 1000), 'source');
    }
    if (failures >= this.#policy.lockoutAfterFailures) {
      const waitMs = lastFailureAt + this.#policy.lockoutMs - this.#now();
      throw identityErrors.throttled(Math.max(1, Math.ceil(waitMs / 1000)), 'locked');
    }
    const backoffMs = this.backoffMs(failures);
    const waitMs = lastFailureAt + backoffMs - this.#now();
    if (backoffMs > 0 && waitMs > 0) throw identityErrors.throttled(Math.ceil(waitMs / 1000), 'backoff');
  }

  async recordFailure(
    account: { tenant: string; email: string },
    sourceIp: string | undefined,
  ): Promise<void> {
    const keys = this.#keys(account, sourceIp);
    await Promise.all([
      this.#cache.increment(keys.failures, this.#policy.lockoutMs),
      this.#cache.set(keys.lastFailure, String(this.#now()), this.#policy.lockoutMs),
      keys.ip ? this.#cache.increment(keys.ip, this.#policy.ipWindowMs) : Promise.resolve(0),
    ]);
  }

  /** A successful login ends the run of consecutive failures. */
  async recordSuccess(account: { tenant: string; email: string }): Promise<void> {
    const keys = this.#keys(account, undefined);
    await Promise.all([this.#cache.delete(keys.failures), this.#cache.delete(keys.lastFailure)]);
  }

  /**
   * Runs one guess at a secret (a second-factor code) under this throttle, for `subject`: refused
   * while it must wait, and counted as a failure when `attempt` answers false.
   */
  async guard(subject: { tenant: string; email: string }, attempt: () => Promise<boolean>): Promise<boolean> {
    await this.check(subject, undefined);
    const accepted = await attempt();
    if (accepted) await this.recordSuccess(subject);
    else await this.recordFailure(subject, undefined);
    return accepted;
  }

  /** 0 for the first `freeFailures` failures, then 1 s, 2 s, 4 s … up to `maxBackoffMs`. */
  backoffMs(failures: number): number {
    if (failures < this.#policy.freeFailures) return 0;
    return Math.min(this.#policy.maxBackoffMs, 1000 * 2 ** (failures - this.#policy.freeFailures));
  }

  #keys(account: { tenant: string; email: string }, sourceIp: string | undefined) {
    // Hashed: the cache never holds an email address, and the key stays within the cache's charset.
    const id = createHash('sha256')
      .update(`${account.tenant}\u0000${account.email.toLowerCase()}`)
      .digest('hex')
      .slice(0, 40);
    const ip = sourceIp ? createHash('sha256').update(sourceIp).digest('hex').slice(0, 40) : undefined;
    return {
      failures: `login:fail:${id}`,
      lastFailure: `login:last:${id}`,
      ip: ip ? `login:ip:${ip}` : undefined,
    };
  }
}
