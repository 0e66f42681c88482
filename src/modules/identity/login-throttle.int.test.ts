import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { findService } from '../../../test/support/services.ts';
import { RedisCache } from '../../adapters/cache/cache.redis.ts';
import { LoginThrottle } from './login-throttle.ts';

describe('login throttling without its cache', () => {
  it('fails closed: no login is checked while the cache cannot be reached', async () => {
    const cache = new RedisCache({ url: 'redis://127.0.0.1:1' });
    try {
      const throttle = new LoginThrottle({ cache });
      await expect(
        throttle.check({ tenant: 'acme', email: 'ada@acme.test' }, '203.0.113.1'),
      ).rejects.toMatchObject({
        code: 'cache_unavailable',
      });
    } finally {
      await cache.close();
    }
  });
});

const redis = await findService('redis');
describe.skipIf(redis.skipReason)(`login throttling across nodes sharing Redis${redis.skipReason}`, () => {
  it("counts one node's failures on every other node", async () => {
    const nodeA = new RedisCache({ url: redis.url! });
    const nodeB = new RedisCache({ url: redis.url! });
    try {
      const account = { tenant: `t-${randomUUID()}`, email: 'ada@acme.test' };
      const throttleA = new LoginThrottle({ cache: nodeA });
      const throttleB = new LoginThrottle({ cache: nodeB });
      for (let i = 0; i < 5; i++) await throttleA.recordFailure(account, undefined);
      await expect(throttleB.check(account, undefined)).rejects.toMatchObject({ code: 'login_throttled' });
      await throttleB.recordSuccess(account);
      await throttleA.check(account, undefined);
    } finally {
      await nodeA.close();
      await nodeB.close();
    }
  });
});
