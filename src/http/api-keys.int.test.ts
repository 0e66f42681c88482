import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, callAs } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { LocalKeyProvider } from '../adapters/keys/key-provider.local.ts';
import { hashToken } from '../crypto/tokens.ts';
import { appServices, type Core, composeCore } from '../main/compose.ts';
import { type App, buildApp } from './app.ts';

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
          password: 'importer exporter of latex',
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

    it('is refused by every app instance the moment one of them revokes it', async () => {
      // A second node: its own services over the same database (and, in production, the same cache).
      const node2 = composeCore({
        database: testDb.database,
        keyProvider: new LocalKeyProvider({ current: masterKey }),
      });
      const other = await buildApp(
        {
          ...appServices(node2),
          readinessChecks: {},
          isDraining: () => false,
        },
        { bodyLimitBytes: 16_384 },
      );
      try {
        const { key, secret } = await newKey({ access: 'read' });
        const onOther = () =>
          other.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: `Bearer ${secret}` } });
        expect((await onOther()).statusCode).toBe(200);
        expect((await call('DELETE', `/api/v1/api-keys/${key.id}`, session)).statusCode).toBe(204);
        expect((await onOther()).statusCode).toBe(401);
      } finally {
        await other.close();
      }
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
