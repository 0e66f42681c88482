import { describe, expect, it } from 'vitest';
import { MemoryCache } from '../../adapters/cache/cache.memory.ts';
import { defaultThrottlePolicy, LoginThrottle } from './login-throttle.ts';

function throttleAt(start = 1_000_000) {
  let now = start;
  const throttle = new LoginThrottle({ cache: new MemoryCache(), now: () => now });
  return { throttle, advance: (ms: number) => (now += ms) };
}

const ada = { tenant: 'acme', email: 'ada@acme.test' };

describe('login throttling', () => {
  it('lets the first failures through, then backs off exponentially', async () => {
    const { throttle, advance } = throttleAt();
    for (let i = 0; i < defaultThrottlePolicy.freeFailures; i++) {
      await throttle.check(ada, '203.0.113.1');
      await throttle.recordFailure(ada, '203.0.113.1');
    }
    await expect(throttle.check(ada, '203.0.113.1')).rejects.toMatchObject({
      code: 'login_throttled',
      details: { retryAfterSeconds: 1, reason: 'backoff' },
    });
    advance(1_001);
    await throttle.check(ada, '203.0.113.1');
    await throttle.recordFailure(ada, '203.0.113.1');
    await expect(throttle.check(ada, '203.0.113.1')).rejects.toMatchObject({
      details: { retryAfterSeconds: 2 },
    });
    expect([5, 6, 7, 14, 30].map((n) => throttle.backoffMs(n))).toEqual([1000, 2000, 4000, 512_000, 900_000]);
  });

  it('locks the account at exactly 100 consecutive failures, not before', async () => {
    const { throttle, advance } = throttleAt();
    for (let i = 0; i < 99; i++) {
      advance(defaultThrottlePolicy.maxBackoffMs + 1);
      await throttle.recordFailure(ada, undefined);
    }
    advance(defaultThrottlePolicy.maxBackoffMs + 1);
    await throttle.check(ada, undefined); // the 100th attempt is still allowed
    await throttle.recordFailure(ada, undefined);
    advance(defaultThrottlePolicy.maxBackoffMs + 1);
    await expect(throttle.check(ada, undefined)).rejects.toMatchObject({
      code: 'login_throttled',
      details: { reason: 'locked' },
    });
  });

  it('forgets the run of failures after a success, and keeps accounts apart', async () => {
    const { throttle } = throttleAt();
    for (let i = 0; i < 8; i++) await throttle.recordFailure(ada, undefined);
    await expect(throttle.check(ada, undefined)).rejects.toMatchObject({ code: 'login_throttled' });
    await throttle.check({ tenant: 'acme', email: 'grace@acme.test' }, undefined);
    await throttle.check({ tenant: 'globex', email: 'ada@acme.test' }, undefined);
    await throttle.recordSuccess(ada);
    await throttle.check(ada, undefined);
  });

  it('throttles one source address across accounts', async () => {
    const { throttle } = throttleAt();
    for (let i = 0; i < defaultThrottlePolicy.ipFailuresPerWindow; i++) {
      await throttle.recordFailure({ tenant: 'acme', email: `user${i}@acme.test` }, '198.51.100.7');
    }
    await expect(
      throttle.check({ tenant: 'acme', email: 'new@acme.test' }, '198.51.100.7'),
    ).rejects.toMatchObject({
      details: { reason: 'source' },
    });
    await throttle.check({ tenant: 'acme', email: 'new@acme.test' }, '198.51.100.8');
  });
});
