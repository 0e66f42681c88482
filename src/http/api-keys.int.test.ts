import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, callAs } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { findService } from '../../test/support/services.ts';
import { RedisCache } from '../adapters/cache/cache.redis.ts';
import { LocalKeyProvider } from '../adapters/keys/key-provider.local.ts';
import { hashPassword } from '../crypto/password.ts';
import { hashToken } from '../crypto/tokens.ts';
import { appServices, type Core, composeCore } from '../main/compose.ts';
import { localTtlMs } from '../modules/identity/principal-cache.ts';
import { type App, buildApp } from './app.ts';

const redis = await findService('redis');
const ownerPassword = 'importer exporter of latex';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`API keys on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let masterKey: Buffer;
    let app: App;
    let session: string;
    let projectA: string;
    let projectB: string;

    const call = (method: string, url: string, token: string, body?: unknown) =>
      callAs(app, method, url, token, body);
    const newKey = async (body: Record<string, unknown>) => {
      const res = await call('POST', '/api/v1/api-keys', session, { name: 'ci', ...body });
      expect(res.statusCode).toBe(201);
      return res.json() as { key: { id: string; prefix: string; last4: string }; secret: string };
    };

    beforeAll(async () => {
      ({ core, testDb, masterKey } = await openTestCore(kind));
      app = await buildTestApp(core);
      const { ownerSetupToken } = await core.tenants.create({
        slug: 'vandelay',
        name: 'Vandelay',
        ownerEmail: 'art@vandelay.test',
      });
      session = (
        await core.identity.setupOwner({
          token: ownerSetupToken,
          displayName: 'Art',
          password: ownerPassword,
        })
      ).session.token;
      projectA = (await call('POST', '/api/v1/projects', session, { name: 'Imports' })).json().id;
      projectB = (await call('POST', '/api/v1/projects', session, { name: 'Exports' })).json().id;
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it('shows the secret once and stores only its hash, with a visible prefix and last 4', async () => {
      const { key, secret } = await newKey({ access: 'write' });
      expect(secret).toMatch(/^srk_[A-Za-z0-9_-]{43}$/);
      expect(key.prefix).toBe(secret.slice(0, 8));
      expect(key.last4).toBe(secret.slice(-4));
      const listed = await call('GET', '/api/v1/api-keys', session);
      expect(listed.body).not.toContain(secret);
      const stored = await core.withTenant((await core.tenants.get('vandelay')).id, (scope) =>
        scope.db.selectFrom('api_keys').select('key_hash').where('id', '=', key.id).executeTakeFirstOrThrow(),
      );
      expect(Buffer.from(stored.key_hash).equals(hashToken(secret))).toBe(true);
    });

    it('lets a write key act, a read key only read', async () => {
      const writer = (await newKey({ access: 'write' })).secret;
      const reader = (await newKey({ access: 'read' })).secret;
      expect(
        (await call('PATCH', `/api/v1/projects/${projectA}`, writer, { name: 'Imports 2' })).statusCode,
      ).toBe(200);
      expect((await call('GET', `/api/v1/projects/${projectA}`, reader)).statusCode).toBe(200);
      const denied = await call('PATCH', `/api/v1/projects/${projectA}`, reader, { name: 'nope' });
      expect(denied.statusCode).toBe(403);
      expect((await call('POST', '/api/v1/projects', reader, { name: 'nope' })).statusCode).toBe(403);
    });

    it('confines a project-limited key to its projects: the others do not exist for it', async () => {
      const limited = (await newKey({ access: 'write', projectIds: [projectA] })).secret;
      expect((await call('GET', `/api/v1/projects/${projectA}`, limited)).statusCode).toBe(200);
      expect((await call('GET', `/api/v1/projects/${projectB}`, limited)).statusCode).toBe(404);
      const listed = (await call('GET', '/api/v1/projects', limited))
        .json()
        .items.map((p: { id: string }) => p.id);
      expect(listed).toEqual([projectA]);
      expect((await call('POST', '/api/v1/projects', limited, { name: 'tenant-wide' })).statusCode).toBe(403);
    });

    it('cannot mint keys or log out: only a session can', async () => {
      const writer = (await newKey({ access: 'write' })).secret;
      const res = await call('POST', '/api/v1/api-keys', writer, { name: 'broader', access: 'write' });
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('session_required');
    });

    it('stops working at once when revoked, and when expired', async () => {
      const { key, secret } = await newKey({ access: 'read' });
      expect((await call('GET', '/api/v1/me', secret)).statusCode).toBe(200);
      expect((await call('DELETE', `/api/v1/api-keys/${key.id}`, session)).statusCode).toBe(204);
      expect((await call('GET', '/api/v1/me', secret)).statusCode).toBe(401);
      expect((await call('DELETE', `/api/v1/api-keys/${key.id}`, session)).statusCode).toBe(404);
      const soon = new Date(Date.now() + 1500).toISOString();
      const shortLived = (await newKey({ access: 'read', expiresAt: soon })).secret;
      expect((await call('GET', '/api/v1/me', shortLived)).statusCode).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 1700));
      expect((await call('GET', '/api/v1/me', shortLived)).statusCode).toBe(401);
      const past = await call('POST', '/api/v1/api-keys', session, {
        name: 'x',
        access: 'read',
        expiresAt: '2001-01-01T00:00:00Z',
      });
      expect(past.json().error.code).toBe('invalid_expiry');
    });

    describe.skipIf(redis.skipReason)(`on two app instances sharing Redis${redis.skipReason}`, () => {
      // Two nodes: each its own services and its own Redis connection, over the same database and the
      // same Redis server, as in production. Each caches principals in Redis.
      const nodes: Array<{ app: App; cache: RedisCache }> = [];
      const on = (node: number, token: string) => callAs(nodes[node]!.app, 'GET', '/api/v1/me', token);
      /**
       * Polls until `node` refuses `token`; returns how long that took. Each node may keep what it
       * read for up to `localTtlMs` in memory: that is the promised bound ("within 1 s everywhere").
       */
      const refusedAfterMs = async (node: number, token: string) => {
        const started = performance.now();
        while ((await on(node, token)).statusCode !== 401) {
          if (performance.now() - started > 5_000) throw new Error(`node ${node} still accepts the token`);
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        return performance.now() - started;
      };
      beforeAll(async () => {
        for (let i = 0; i < 2; i++) {
          const cache = new RedisCache({ url: redis.url! });
          const node = composeCore({
            database: testDb.database,
            objects: core.objects,
            keyProvider: new LocalKeyProvider({ current: masterKey }),
            cache,
          });
          const built = await buildApp(
            { ...appServices(node), readinessChecks: {}, isDraining: () => false },
            { bodyLimitBytes: 16_384 },
          );
          nodes.push({ app: built, cache });
        }
      });
      afterAll(async () => {
        for (const node of nodes) {
          await node.app.close();
          await node.cache.close();
        }
      });

      it('refuses a key on every node the moment one of them revokes it', async () => {
        const { key, secret } = await newKey({ access: 'read' });
        // Both nodes have now cached the key's principal.
        expect((await on(0, secret)).statusCode).toBe(200);
        expect((await on(1, secret)).statusCode).toBe(200);
        const revoked = await callAs(nodes[0]!.app, 'DELETE', `/api/v1/api-keys/${key.id}`, session);
        expect(revoked.statusCode).toBe(204);
        // At once on the node that revoked it, within the local bound on the other.
        expect((await on(0, secret)).statusCode).toBe(401);
        expect(await refusedAfterMs(1, secret)).toBeLessThanOrEqual(localTtlMs + 250);
      });

      it('ends a session on every node at logout, and a disabled user everywhere', async () => {
        const tenantId = (await core.tenants.get('vandelay')).id;
        const passwordHash = await hashPassword(ownerPassword);
        await core.withTenant(tenantId, (scope) =>
          scope.db
            .insertInto('users')
            .values({
              id: '5d1e3c70-6f0a-4c1e-9a57-6b0f4c2d9e11',
              email: 'kramer@vandelay.test',
              display_name: 'Kramer',
              status: 'active',
              role: 'member',
              password_hash: passwordHash,
            })
            .execute(),
        );
        const login = () =>
          core.identity.login({ tenant: 'vandelay', email: 'kramer@vandelay.test', password: ownerPassword });
        const first = (await login()).session.token;
        expect((await on(1, first)).statusCode).toBe(200);
        const out = await callAs(nodes[0]!.app, 'POST', '/api/v1/auth/logout', first);
        expect(out.statusCode).toBe(204);
        expect(await refusedAfterMs(1, first)).toBeLessThanOrEqual(localTtlMs + 250);

        const second = (await login()).session.token;
        expect((await on(1, second)).statusCode).toBe(200);
        const disabled = await callAs(
          nodes[0]!.app,
          'PATCH',
          '/api/v1/users/5d1e3c70-6f0a-4c1e-9a57-6b0f4c2d9e11',
          session,
          { status: 'disabled' },
        );
        expect(disabled.statusCode).toBe(200);
        expect(await refusedAfterMs(1, second)).toBeLessThanOrEqual(localTtlMs + 250);
      });
    });

    it('is never read from a query string or a cookie', async () => {
      const { secret } = await newKey({ access: 'read' });
      expect((await app.inject({ method: 'GET', url: `/api/v1/me?api_key=${secret}` })).statusCode).toBe(401);
      expect(
        (
          await app.inject({
            method: 'GET',
            url: '/api/v1/me',
            headers: { cookie: `strongroom_session=${secret}` },
          })
        ).statusCode,
      ).toBe(401);
    });

    it("does not open another tenant's data", async () => {
      const other = await core.tenants.create({
        slug: 'kramerica',
        name: 'Kramerica',
        ownerEmail: 'k@kramerica.test',
      });
      const otherSession = (
        await core.identity.setupOwner({
          token: other.ownerSetupToken,
          displayName: 'K',
          password: 'the coffee table book',
        })
      ).session.token;
      const otherKey = (
        await call('POST', '/api/v1/api-keys', otherSession, { name: 'k', access: 'write' })
      ).json().secret;
      for (const [method, url] of [
        ['GET', `/api/v1/projects/${projectA}`],
        ['PATCH', `/api/v1/projects/${projectA}`],
        ['DELETE', `/api/v1/projects/${projectA}`],
        ['GET', `/api/v1/projects/${projectA}/members`],
      ] as const) {
        const res = await call(method, url, otherKey, method === 'PATCH' ? { name: 'pwned' } : undefined);
        expect(res.statusCode, `${method} ${url}`).toBe(404);
      }
      expect((await call('GET', `/api/v1/projects/${projectA}`, session)).json().name).toBe('Imports 2');
    });
  });
}
