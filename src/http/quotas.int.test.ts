import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildTestApp, callAs, projectViewerKey } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { enrolStaff } from '../../test/support/staff.ts';
import type { Core } from '../main/compose.ts';
import type { App } from './app.ts';

const password = 'quotas need a long password too';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`quotas, rate limits and usage on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    // A frozen clock: rate windows change only when a test moves time on.
    let nowMs = Date.now();
    const tenants: Record<'a' | 'b', { id: string; owner: string; projectId: string }> = {} as never;
    let operator: string;
    let support: string;
    let viewer: string;

    const limits = (tenant: 'a' | 'b', body: unknown, key = operator) =>
      callAs(app, 'PUT', `/api/v1/ops/tenants/${tenants[tenant].id}/limits`, key, body);
    const usage = (tenant: 'a' | 'b') => callAs(app, 'GET', '/api/v1/usage', tenants[tenant].owner);
    const createRecord = (tenant: 'a' | 'b', data: unknown = { n: 1 }) =>
      callAs(app, 'POST', `/api/v1/projects/${tenants[tenant].projectId}/records`, tenants[tenant].owner, {
        collection: 'things',
        data,
      });
    const upload = (tenant: 'a' | 'b', body: Buffer) =>
      app.inject({
        method: 'PUT',
        url: `/api/v1/projects/${tenants[tenant].projectId}/attachments?filename=f.bin`,
        headers: {
          authorization: `Bearer ${tenants[tenant].owner}`,
          'content-type': 'application/octet-stream',
        },
        payload: body,
      });
    const storedObjects = async () => {
      const keys: string[] = [];
      for await (const object of core.objects.list('')) keys.push(object.key);
      return keys;
    };

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind, { clock: { now: () => new Date(nowMs) } }));
      app = await buildTestApp(core);
      for (const name of ['a', 'b'] as const) {
        const created = await core.tenants.create({
          slug: `quota-${name}`,
          name,
          ownerEmail: `owner@${name}.test`,
        });
        const owner = (
          await core.identity.setupOwner({ token: created.ownerSetupToken, displayName: 'O', password })
        ).session.token;
        const projectId = (await callAs(app, 'POST', '/api/v1/projects', owner, { name: 'P' })).json().id;
        tenants[name] = { id: created.tenant.id, owner, projectId };
      }
      operator = (await enrolStaff(core, { email: 'op@ops.test', displayName: 'Op', role: 'operator' }))
        .apiKey;
      support = (await enrolStaff(core, { email: 'su@ops.test', displayName: 'Su', role: 'support' })).apiKey;
      viewer = await projectViewerKey(core, tenants.a.owner, tenants.a.projectId);
    });
    beforeEach(async () => {
      nowMs += 1_000;
      for (const name of ['a', 'b'] as const) expect((await limits(name, {})).statusCode).toBe(200);
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it("refuses a tenant over its request rate with 429 rate_limited and Retry-After, without touching another tenant's", async () => {
      expect((await limits('a', { requestsPerSecond: 5 })).json()).toMatchObject({ requestsPerSecond: 5 });
      const statuses: number[] = [];
      let refused: Awaited<ReturnType<typeof usage>> | undefined;
      for (let i = 0; i < 8; i++) {
        const response = await callAs(app, 'GET', '/api/v1/projects', tenants.a.owner);
        statuses.push(response.statusCode);
        if (response.statusCode === 429) refused = response;
        // B, in the same second, is served every time.
        expect((await callAs(app, 'GET', '/api/v1/projects', tenants.b.owner)).statusCode).toBe(200);
      }
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
      expect(refused?.json().error).toMatchObject({ code: 'rate_limited', details: { reason: 'rate' } });
      expect(refused?.headers['retry-after']).toBe('1');
      // The refusal happened before any work: a refused write changes nothing.
      const before = (await usage('b')).json().records;
      const write = await createRecord('a');
      expect([write.statusCode, write.json().error.code]).toEqual([429, 'rate_limited']);
      nowMs += 1_000;
      expect((await callAs(app, 'GET', '/api/v1/projects', tenants.a.owner)).statusCode).toBe(200);
      expect((await usage('b')).json().records).toBe(before);
    });

    it('admits exactly the limit when many requests arrive at once (counts in flight to the cache included)', async () => {
      expect((await limits('a', { requestsPerSecond: 7 })).statusCode).toBe(200);
      const outcomes = await Promise.allSettled(
        Array.from({ length: 40 }, () => core.limiter.admit(tenants.a.id)),
      );
      const admitted = outcomes.filter((o) => o.status === 'fulfilled');
      expect(admitted).toHaveLength(7);
      for (const o of admitted) (o as PromiseFulfilledResult<() => void>).value();
      expect(core.limiter.inFlight(tenants.a.id)).toBe(0);
    });

    it('caps the requests a tenant has in progress, and frees a slot when a request ends', async () => {
      expect((await limits('a', { concurrentRequests: 2 })).statusCode).toBe(200);
      const first = await core.limiter.admit(tenants.a.id);
      const second = await core.limiter.admit(tenants.a.id);
      await expect(core.limiter.admit(tenants.a.id)).rejects.toMatchObject({
        code: 'rate_limited',
        details: { reason: 'concurrency' },
      });
      const refused = await callAs(app, 'GET', '/api/v1/projects', tenants.a.owner);
      expect([refused.statusCode, refused.json().error.details.reason]).toEqual([429, 'concurrency']);
      expect((await callAs(app, 'GET', '/api/v1/projects', tenants.b.owner)).statusCode).toBe(200);
      first();
      first(); // a second release frees nothing more
      expect(core.limiter.inFlight(tenants.a.id)).toBe(1);
      expect((await callAs(app, 'GET', '/api/v1/projects', tenants.a.owner)).statusCode).toBe(200);
      // Answered requests gave their slot back.
      expect(core.limiter.inFlight(tenants.a.id)).toBe(1);
      second();
      expect(core.limiter.inFlight(tenants.a.id)).toBe(0);
    });

    it('refuses a record past the record quota with 413 quota_exceeded, and keeps nothing of it', async () => {
      const stored = (await usage('a')).json().records as number;
      expect((await limits('a', { maxRecords: stored + 2 })).statusCode).toBe(200);
      expect((await createRecord('a')).statusCode).toBe(201);
      expect((await createRecord('a')).statusCode).toBe(201);
      const refused = await createRecord('a', { canary: 'over-quota-record' });
      expect(refused.statusCode).toBe(413);
      expect(refused.json().error).toMatchObject({ code: 'quota_exceeded', details: { quota: 'records' } });
      expect((await usage('a')).json().records).toBe(stored + 2);
      const listed = await callAs(
        app,
        'GET',
        `/api/v1/projects/${tenants.a.projectId}/records?limit=200`,
        tenants.a.owner,
      );
      expect(listed.body).not.toContain('over-quota-record');
      // B's quota is B's own.
      expect((await createRecord('b')).statusCode).toBe(201);
      // Back to the default: A writes again.
      expect((await limits('a', { maxRecords: null })).statusCode).toBe(200);
      expect((await createRecord('a')).statusCode).toBe(201);
    });

    it('counts attachment bytes toward the storage quota and refuses an upload past it, deleting its object', async () => {
      const before = (await usage('a')).json();
      expect((await upload('a', Buffer.alloc(1000, 1))).statusCode).toBe(201);
      const after = (await usage('a')).json();
      expect(after.attachmentBytes - before.attachmentBytes).toBe(1000);
      expect(after.storageBytes).toBe(after.recordBytes + after.attachmentBytes);

      const objectsBefore = await storedObjects();
      expect((await limits('a', { maxStorageBytes: after.storageBytes + 500 })).statusCode).toBe(200);
      const refused = await upload('a', Buffer.alloc(1000, 2));
      expect(refused.statusCode).toBe(413);
      expect(refused.json().error).toMatchObject({
        code: 'quota_exceeded',
        details: { quota: 'storage_bytes' },
      });
      // Refused before a byte was stored (the declared length was over), so no object, no version.
      expect(await storedObjects()).toEqual(objectsBefore);
      expect((await usage('a')).json().attachmentBytes).toBe(after.attachmentBytes);
      // Within the quota: accepted.
      expect((await upload('a', Buffer.alloc(400, 3))).statusCode).toBe(201);
      const record = await createRecord('a', { big: 'x'.repeat(2000) });
      expect([record.statusCode, record.json().error.code]).toEqual([413, 'quota_exceeded']);
      // Refused uploads close their connection; every request, refused or not, gave its slot back.
      expect(core.limiter.inFlight(tenants.a.id)).toBe(0);
    });

    it('reports usage to owners and admins only, each tenant its own, and to operators', async () => {
      const own = await usage('a');
      expect(own.statusCode).toBe(200);
      expect(own.json()).toMatchObject({
        records: expect.any(Number),
        limits: { requestsPerSecond: 1000, overridden: [] },
      });
      const member = await callAs(app, 'GET', '/api/v1/usage', viewer);
      expect([member.statusCode, member.json().error.code]).toEqual([403, 'forbidden']);

      // Deleting a project takes its records out of the count (the triggers see the cascade).
      const projectId = (
        await callAs(app, 'POST', '/api/v1/projects', tenants.b.owner, { name: 'Temp' })
      ).json().id;
      const bBefore = (await usage('b')).json().records as number;
      for (let i = 0; i < 3; i++) {
        await callAs(app, 'POST', `/api/v1/projects/${projectId}/records`, tenants.b.owner, {
          collection: 'c',
          data: { i },
        });
      }
      expect((await usage('b')).json().records).toBe(bBefore + 3);
      expect((await callAs(app, 'DELETE', `/api/v1/projects/${projectId}`, tenants.b.owner)).statusCode).toBe(
        204,
      );
      expect((await usage('b')).json().records).toBe(bBefore);
      expect((await usage('a')).json().records).toBe(own.json().records);

      // API calls reach the daily totals when the meter flushes.
      await core.meter.flush();
      const calls = (await usage('a')).json().apiCalls as Array<{ day: string; calls: number }>;
      expect(calls.at(-1)).toMatchObject({ day: new Date(nowMs).toISOString().slice(0, 10) });
      expect(calls.at(-1)!.calls).toBeGreaterThan(5);

      const ops = await callAs(app, 'GET', `/api/v1/ops/tenants/quota-a/usage`, support);
      expect(ops.statusCode).toBe(200);
      expect(ops.json().records).toBe((await usage('a')).json().records);
      const unknown = await callAs(app, 'GET', `/api/v1/ops/tenants/no-such-tenant/usage`, operator);
      expect(unknown.statusCode).toBe(404);
    });

    it('lets only operators set limits, and refuses malformed ones without a change', async () => {
      expect((await limits('a', { requestsPerSecond: 50 })).statusCode).toBe(200);
      const bySupport = await limits('a', { requestsPerSecond: 1 }, support);
      expect([bySupport.statusCode, bySupport.json().error.code]).toEqual([403, 'forbidden']);
      const byTenant = await limits('a', { requestsPerSecond: 1 }, tenants.a.owner);
      expect(byTenant.statusCode).toBe(401);
      for (const body of [
        { requestsPerSecond: 0 },
        { requestsPerSecond: -1 },
        { concurrentRequests: 1e9 },
        { maxRecords: -5 },
      ]) {
        const refused = await limits('a', body);
        expect([refused.statusCode, refused.json().error.code]).toEqual([400, 'invalid_limits']);
      }
      // Not whole numbers at all: refused by the request schema (invalid_request).
      for (const body of [
        { requestsPerSecond: 1.5 },
        { requestsPerSecond: '5' },
        { maxStorageBytes: 2 ** 60 },
        { unknown: 1 },
        [],
      ]) {
        expect((await limits('a', body)).statusCode).toBe(400);
      }
      const current = (await usage('a')).json().limits;
      expect(current).toMatchObject({ requestsPerSecond: 50, overridden: ['requestsPerSecond'] });
    });

    it('serves Prometheus metrics to operators and security staff only, with bounded labels', async () => {
      expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
      expect((await callAs(app, 'GET', '/metrics', support)).statusCode).toBe(403);
      expect((await callAs(app, 'GET', '/metrics', tenants.a.owner)).statusCode).toBe(401);
      await callAs(app, 'GET', `/api/v1/projects/${tenants.a.projectId}`, tenants.a.owner);
      const scraped = await callAs(app, 'GET', '/metrics', operator);
      expect(scraped.statusCode).toBe(200);
      expect(scraped.headers['content-type']).toContain('text/plain');
      expect(scraped.body).toContain(
        'strongroom_http_requests_total{method="GET",route="/api/v1/projects/:projectId",status="200"}',
      );
      expect(scraped.body).toContain(`strongroom_tenant_api_calls_total{tenant="${tenants.a.id}"}`);
      expect(scraped.body).toMatch(/strongroom_rate_limited_total\{reason="rate"\} [1-9]/);
      // Route templates, never raw URLs: no project id appears as a label.
      expect(scraped.body).not.toContain(tenants.a.projectId);
    });
  });
}
