import type { Response as LightResponse } from 'light-my-request';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { enrolStaff } from '../../test/support/staff.ts';
import { appServices, type Core } from '../main/compose.ts';
import { type App, buildApp } from './app.ts';

const json = { 'content-type': 'application/json' };

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`HTTP API on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    let draining = false;
    let objectsUp = true;
    let operatorKey: string;
    let developerKey: string;
    const auth = (key: string) => ({ authorization: `Bearer ${key}` });

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      app = await buildApp(
        {
          ...appServices(core),
          readinessChecks: {
            database: () => core.database.ping(),
            objects: async () => {
              if (!objectsUp) throw new Error('object store down');
            },
          },
          isDraining: () => draining,
        },
        { bodyLimitBytes: 4096 },
      );
      operatorKey = (
        await enrolStaff(core, { email: 'ops@platform.test', displayName: 'Ops', role: 'operator' })
      ).apiKey;
      developerKey = (
        await enrolStaff(core, { email: 'dev@platform.test', displayName: 'Dev', role: 'developer' })
      ).apiKey;
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it('answers /healthz with security headers on every response', async () => {
      const res = await app.inject({ method: 'GET', url: '/healthz' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ok' });
      expect(res.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['content-security-policy']).toContain("default-src 'none'");
      expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(res.headers['cross-origin-resource-policy']).toBe('same-origin');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      // Refusals and unknown routes carry them too.
      for (const url of ['/api/v1/me', '/no-such-route']) {
        const refused = await app.inject({ method: 'GET', url });
        expect(refused.statusCode).toBeGreaterThanOrEqual(400);
        expect(refused.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
        expect(refused.headers['content-security-policy']).toContain("default-src 'none'");
      }
    });

    it('reports readiness per dependency, and 503 when one is down or when draining', async () => {
      let res = await app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ready', checks: { database: 'ok', objects: 'ok' } });
      objectsUp = false;
      res = await app.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'not_ready', checks: { database: 'ok', objects: 'failed' } });
      objectsUp = true;
      draining = true;
      try {
        res = await app.inject({ method: 'GET', url: '/readyz' });
        expect(res.statusCode).toBe(503);
        expect(res.json().status).toBe('draining');
        res = await app.inject({ method: 'GET', url: '/api/v1/ops/tenants', headers: auth(operatorKey) });
        expect(res.statusCode).toBe(503);
        expect(res.json().error.code).toBe('shutting_down');
      } finally {
        draining = false;
      }
    });

    it('serves an OpenAPI 3.1 document generated from the route schemas', async () => {
      const res = await app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
      expect(res.statusCode).toBe(200);
      const doc = res.json();
      expect(doc.openapi).toBe('3.1.0');
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining([
          '/api/v1/ops/tenants',
          '/api/v1/ops/tenants/{tenantId}',
          '/api/v1/ops/tenants/{tenantId}/suspend',
          '/healthz',
          '/readyz',
        ]),
      );
      expect(
        doc.paths['/api/v1/ops/tenants'].post.requestBody.content['application/json'].schema.required,
      ).toEqual(['slug', 'name', 'ownerEmail']);
      // Every route of the tenant scope documents the tenant's limits (429) and the cache being down (503).
      const tenantOperations = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
        .filter(
          ([path]) =>
            path.startsWith('/api/v1/') &&
            !path.startsWith('/api/v1/ops') &&
            !path.startsWith('/api/v1/auth'),
        )
        .flatMap(([path, operations]) =>
          Object.entries(operations).map(([method, operation]) => ({
            name: `${method} ${path}`,
            statuses: Object.keys((operation as { responses: object }).responses),
          })),
        );
      expect(tenantOperations.length).toBeGreaterThan(30);
      for (const operation of tenantOperations) {
        expect(operation.statuses, operation.name).toEqual(expect.arrayContaining(['429', '503']));
      }
    });

    it('refuses the operator API without a valid staff key', async () => {
      const cases = [
        {},
        { authorization: 'Bearer' },
        { authorization: 'Basic b3BzOnNlY3JldA==' },
        { authorization: 'Bearer sro_not-a-real-key' },
        { authorization: `Bearer ${operatorKey}x` },
      ];
      for (const headers of cases) {
        const res = await app.inject({ method: 'GET', url: '/api/v1/ops/tenants', headers });
        expect(res.statusCode).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Bearer');
        expect(res.json().error.code).toBe('unauthenticated');
      }
      // Never from the query string, where proxies and logs would keep it.
      const res = await app.inject({ method: 'GET', url: `/api/v1/ops/tenants?access_token=${operatorKey}` });
      expect(res.statusCode).toBe(401);
    });

    it("refuses a disabled staff member's keys on the next request", async () => {
      const { apiKey } = await enrolStaff(core, {
        email: 'leaver@platform.test',
        displayName: 'L',
        role: 'operator',
      });
      const auth = { authorization: `Bearer ${apiKey}` };
      expect(
        (await app.inject({ method: 'GET', url: '/api/v1/ops/tenants', headers: auth })).statusCode,
      ).toBe(200);
      await core.staff.disable('leaver@platform.test');
      expect(
        (await app.inject({ method: 'GET', url: '/api/v1/ops/tenants', headers: auth })).statusCode,
      ).toBe(401);
    });

    it('denies staff roles the permission table does not allow', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/ops/tenants',
        headers: { ...json, ...auth(developerKey) },
        payload: { slug: 'devs-own', name: 'D', ownerEmail: 'o@d.test' },
      });
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('forbidden');
      expect((await core.tenants.list()).map((t) => t.slug)).not.toContain('devs-own');
    });

    it('runs the tenant lifecycle for an operator', async () => {
      const created = await app.inject({
        method: 'POST',
        url: '/api/v1/ops/tenants',
        headers: { ...json, ...auth(operatorKey) },
        payload: { slug: 'globex', name: 'Globex', ownerEmail: 'hank@globex.test' },
      });
      expect(created.statusCode).toBe(201);
      const body = created.json();
      expect(body.tenant).toMatchObject({
        slug: 'globex',
        name: 'Globex',
        status: 'active',
        migrationStatus: 'ok',
      });
      expect(body.ownerSetupToken).toMatch(/^srs_/);
      const id = body.tenant.id as string;

      const listed = await app.inject({
        method: 'GET',
        url: '/api/v1/ops/tenants',
        headers: auth(operatorKey),
      });
      expect(listed.json().items.map((t: { slug: string }) => t.slug)).toContain('globex');

      const schema = await app.inject({
        method: 'GET',
        url: '/api/v1/ops/tenants/globex/schema',
        headers: auth(operatorKey),
      });
      expect(schema.statusCode).toBe(200);
      expect(schema.json()).toMatchObject({ tenantId: id, upToDate: true });
      expect(schema.json().applied).toEqual(core.tenantMigrations.map((m) => m.name));

      const suspended = await app.inject({
        method: 'POST',
        url: `/api/v1/ops/tenants/${id}/suspend`,
        headers: auth(operatorKey),
      });
      expect(suspended.json().status).toBe('suspended');
      const again = await app.inject({
        method: 'POST',
        url: `/api/v1/ops/tenants/${id}/suspend`,
        headers: auth(operatorKey),
      });
      expect(again.statusCode).toBe(409);
      expect(again.json().error.code).toBe('invalid_tenant_state');
      const resumed = await app.inject({
        method: 'POST',
        url: '/api/v1/ops/tenants/globex/resume',
        headers: auth(operatorKey),
      });
      expect(resumed.json().status).toBe('active');

      const unconfirmed = await app.inject({
        method: 'DELETE',
        url: '/api/v1/ops/tenants/globex',
        headers: auth(operatorKey),
      });
      expect(unconfirmed.statusCode).toBe(400);
      expect(unconfirmed.json().error.code).toBe('confirmation_required');
      const deleted = await app.inject({
        method: 'DELETE',
        url: '/api/v1/ops/tenants/globex?confirm=globex',
        headers: auth(operatorKey),
      });
      expect(deleted.statusCode).toBe(200);
      expect(deleted.json()).toMatchObject({ id, status: 'deleted', name: null });
      const gone = await app.inject({
        method: 'GET',
        url: '/api/v1/ops/tenants/globex',
        headers: auth(operatorKey),
      });
      expect(gone.statusCode).toBe(404);
      expect(gone.json().error.code).toBe('tenant_not_found');
    });

    it('answers bad input with a precise 4xx and a stable code, never a stack trace', async () => {
      const post = (payload: string, headers: Record<string, string> = json) =>
        app.inject({
          method: 'POST',
          url: '/api/v1/ops/tenants',
          headers: { ...headers, ...auth(operatorKey) },
          payload,
        });
      const cases: Array<[Promise<LightResponse>, number, string]> = [
        [post('{"slug": "x", '), 400, 'malformed_json'],
        [post(''), 400, 'malformed_json'],
        [
          post(JSON.stringify({ slug: 'a'.repeat(5000), name: 'n', ownerEmail: 'o@x.test' })),
          413,
          'payload_too_large',
        ],
        [
          post('slug=acme', { 'content-type': 'application/x-www-form-urlencoded' }),
          415,
          'unsupported_media_type',
        ],
        [post(JSON.stringify({ slug: 'acme' })), 400, 'invalid_request'],
        [post(JSON.stringify({ slug: '../x', name: 'n', ownerEmail: 'o@x.test' })), 400, 'invalid_slug'],
        [post(JSON.stringify({ slug: 'public', name: 'n', ownerEmail: 'o@x.test' })), 400, 'invalid_slug'],
        [post(JSON.stringify({ slug: 'fine', name: 'n', ownerEmail: 'nope' })), 400, 'invalid_email'],
        [post(JSON.stringify([1, 2])), 400, 'invalid_request'],
        [app.inject({ method: 'GET', url: '/api/v1/nothing-here' }), 404, 'route_not_found'],
        [
          app.inject({
            method: 'GET',
            url: `/api/v1/ops/tenants/${'x'.repeat(300)}`,
            headers: auth(operatorKey),
          }),
          414,
          'url_too_long',
        ],
        [
          app.inject({ method: 'GET', url: '/api/v1/ops/tenants/%E0%A4%A', headers: auth(operatorKey) }),
          400,
          'invalid_url',
        ],
        [
          app.inject({ method: 'GET', url: '/api/v1/ops/tenants?limit=0', headers: auth(operatorKey) }),
          400,
          'invalid_request',
        ],
        [
          app.inject({
            method: 'GET',
            url: '/api/v1/ops/tenants?after=1%27%20or%201=1',
            headers: auth(operatorKey),
          }),
          400,
          'invalid_request',
        ],
      ];
      for (const [pending, status, code] of cases) {
        const res = await pending;
        expect({ status: res.statusCode, code: res.json().error.code }).toEqual({ status, code });
        expect(res.json().error.requestId).toMatch(/^[0-9a-f-]{36}$/);
        expect(res.body).not.toMatch(/at .*\.ts:\d+|node_modules|SELECT|select .* from/);
      }
      // Invalid UTF-8 (a raw 0xFF byte inside a JSON string) is a precise 400, never a 500.
      const badUtf8 = Buffer.concat([
        Buffer.from('{"slug":"ac'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('me","name":"n","ownerEmail":"o@x.test"}'),
      ]);
      const utf8 = await app.inject({
        method: 'POST',
        url: '/api/v1/ops/tenants',
        headers: { ...json, ...auth(operatorKey) },
        payload: badUtf8,
      });
      expect(utf8.statusCode).toBe(400);
      expect(utf8.json().error.code).toBe('invalid_utf8');
      expect((await core.tenants.list()).some((tenant) => tenant.slug.startsWith('ac'))).toBe(false);
      await post(JSON.stringify({ slug: 'twice', name: 'n', ownerEmail: 'o@x.test' }));
      const dup = await post(JSON.stringify({ slug: 'twice', name: 'n', ownerEmail: 'o@x.test' }));
      expect(dup.statusCode).toBe(409);
      expect(dup.json().error.code).toBe('slug_taken');
    });
  });
}

describe('behind a TLS-terminating proxy', () => {
  let app: App;
  beforeAll(async () => {
    app = await buildApp(
      {
        tenants: {} as Core['tenants'],
        staff: { authenticate: async () => undefined } as unknown as Core['staff'],
        identity: {} as Core['identity'],
        mfa: {} as Core['mfa'],
        projects: {} as Core['projects'],
        records: { maxBytes: 1024 } as Core['records'],
        attachments: {} as Core['attachments'],
        policies: {} as Core['policies'],
        quotas: {} as Core['quotas'],
        limiter: {} as Core['limiter'],
        meter: {} as Core['meter'],
        support: {} as Core['support'],
        backups: {} as Core['backups'],
        restoreJobs: { stop: async () => undefined } as unknown as Core['restoreJobs'],
        audit: { recordRequest: () => undefined, flush: async () => undefined } as unknown as Core['audit'],
        readinessChecks: {},
        isDraining: () => false,
      },
      { bodyLimitBytes: 4096, trustProxy: ['10.0.0.7'], httpsPort: 443 },
    );
  });
  afterAll(async () => app?.close());

  it('accepts requests the trusted hop marks as HTTPS', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/ops/tenants',
      remoteAddress: '10.0.0.7',
      headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.9' },
    });
    expect(res.statusCode).toBe(401); // reached authentication: the HTTPS check passed
  });

  it('refuses API calls over plain HTTP with 403, never a redirect', async () => {
    for (const headers of [{}, { 'x-forwarded-proto': 'http' }]) {
      const res = await app.inject({
        method: 'GET',
        url: '/api/v1/ops/tenants',
        remoteAddress: '10.0.0.7',
        headers,
      });
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('https_required');
    }
  });

  it('ignores X-Forwarded-Proto from anyone but the trusted hop', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/ops/tenants',
      remoteAddress: '198.51.100.20',
      headers: { 'x-forwarded-proto': 'https' },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe('https_required');
  });

  it('redirects browser pages to HTTPS and lets probes through', async () => {
    const page = await app.inject({
      method: 'GET',
      url: '/console?x=1',
      remoteAddress: '10.0.0.7',
      headers: { host: 'vault.example.com' },
    });
    expect(page.statusCode).toBe(301);
    expect(page.headers.location).toBe('https://vault.example.com/console?x=1');
    const probe = await app.inject({ method: 'GET', url: '/healthz', remoteAddress: '10.0.0.7' });
    expect(probe.statusCode).toBe(200);
  });
});
