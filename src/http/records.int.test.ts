import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, projectViewerKey } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { tenantSchemaName } from '../db/tenant-schema.ts';
import type { Core } from '../main/compose.ts';
import type { App } from './app.ts';

const password = 'records need a long password too';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`records on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    let owner: string;
    let viewer: string;
    let outsider: string;
    let projectId: string;
    let otherProjectId: string;
    let tenantId: string;

    const send = (
      method: string,
      url: string,
      token: string,
      options: { body?: unknown; headers?: Record<string, string>; raw?: string } = {},
    ) =>
      app.inject({
        method: method as 'GET',
        url,
        headers: {
          authorization: `Bearer ${token}`,
          ...(options.body !== undefined || options.raw !== undefined
            ? { 'content-type': 'application/json' }
            : {}),
          ...options.headers,
        },
        ...(options.raw !== undefined
          ? { payload: options.raw }
          : options.body !== undefined
            ? { payload: JSON.stringify(options.body) }
            : {}),
      });
    const records = (pid = projectId) => `/api/v1/projects/${pid}/records`;
    const create = async (body: unknown, token = owner, headers: Record<string, string> = {}) =>
      send('POST', records(), token, { body, headers });
    const stored = async () =>
      (await send('GET', `${records()}?limit=200`, owner)).json().items as Array<{
        id: string;
        version: number;
      }>;

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      app = await buildTestApp(core);
      const a = await core.tenants.create({ slug: 'records-a', name: 'A', ownerEmail: 'owner@a.test' });
      tenantId = a.tenant.id;
      owner = (await core.identity.setupOwner({ token: a.ownerSetupToken, displayName: 'O', password }))
        .session.token;
      const b = await core.tenants.create({ slug: 'records-b', name: 'B', ownerEmail: 'owner@b.test' });
      outsider = (await core.identity.setupOwner({ token: b.ownerSetupToken, displayName: 'B', password }))
        .session.token;
      projectId = (await send('POST', '/api/v1/projects', owner, { body: { name: 'CRM' } })).json().id;
      otherProjectId = (await send('POST', '/api/v1/projects', owner, { body: { name: 'Secret' } })).json()
        .id;
      // A member who may only view the CRM project.
      viewer = await projectViewerKey(core, owner, projectId);
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it('creates, reads, replaces, patches and deletes a record, with its version as ETag', async () => {
      const created = await create({
        collection: 'contacts',
        data: { name: 'Ada', tags: ['vip'], nested: { a: 1 } },
      });
      expect(created.statusCode).toBe(201);
      const record = created.json();
      expect(record).toMatchObject({ projectId, collection: 'contacts', version: 1 });
      expect(created.headers.etag).toBe('"1"');
      const read = await send('GET', `${records()}/${record.id}`, owner);
      expect(read.json().data).toEqual({ name: 'Ada', tags: ['vip'], nested: { a: 1 } });
      expect(read.headers.etag).toBe('"1"');

      const put = await send('PUT', `${records()}/${record.id}`, owner, {
        body: { data: { name: 'Ada Lovelace', nested: { a: 1, b: 2 } } },
        headers: { 'if-match': '"1"' },
      });
      expect([put.statusCode, put.headers.etag]).toEqual([200, '"2"']);
      const patched = await send('PATCH', `${records()}/${record.id}`, owner, {
        body: { data: { nested: { a: null, c: 3 }, email: 'ada@a.test' } },
        headers: { 'if-match': '"2"' },
      });
      expect(patched.json()).toMatchObject({
        version: 3,
        data: { name: 'Ada Lovelace', nested: { b: 2, c: 3 }, email: 'ada@a.test' },
      });
      const deleted = await send('DELETE', `${records()}/${record.id}`, owner, {
        headers: { 'if-match': '"3"' },
      });
      expect(deleted.statusCode).toBe(204);
      expect((await send('GET', `${records()}/${record.id}`, owner)).statusCode).toBe(404);
    });

    it('refuses a change without If-Match (428) or with a stale one (412), and keeps the record as it was', async () => {
      const { id } = (await create({ collection: 'contacts', data: { n: 1 } })).json();
      const url = `${records()}/${id}`;
      const missing = await send('PUT', url, owner, { body: { data: { n: 2 } } });
      expect([missing.statusCode, missing.json().error.code]).toEqual([428, 'precondition_required']);
      const stale = await send('PATCH', url, owner, {
        body: { data: { n: 2 } },
        headers: { 'if-match': '"7"' },
      });
      expect([stale.statusCode, stale.json().error.code]).toEqual([412, 'precondition_failed']);
      const bad = await send('DELETE', url, owner, { headers: { 'if-match': 'W/"1"' } });
      expect([bad.statusCode, bad.json().error.code]).toEqual([400, 'invalid_if_match']);
      const staleDelete = await send('DELETE', url, owner, { headers: { 'if-match': '"2"' } });
      expect(staleDelete.statusCode).toBe(412);
      const now = await send('GET', url, owner);
      expect([now.json().version, now.json().data]).toEqual([1, { n: 1 }]);
      // Two writers with the same ETag: exactly one wins.
      const race = await Promise.all(
        [1, 2].map((n) => send('PUT', url, owner, { body: { data: { n } }, headers: { 'if-match': '"1"' } })),
      );
      expect(race.map((r) => r.statusCode).sort()).toEqual([200, 412]);
    });

    it('returns the first result for a retried create with the same Idempotency-Key', async () => {
      const before = (await stored()).length;
      const body = { collection: 'orders', data: { total: 42 } };
      const first = await create(body, owner, { 'idempotency-key': 'order-42' });
      const retry = await create(body, owner, { 'idempotency-key': 'order-42' });
      expect([first.statusCode, retry.statusCode]).toEqual([201, 200]);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(retry.json().id).toBe(first.json().id);
      const reused = await create({ ...body, data: { total: 43 } }, owner, { 'idempotency-key': 'order-42' });
      expect([reused.statusCode, reused.json().error.code]).toEqual([409, 'idempotency_key_reused']);
      const badKey = await create(body, owner, { 'idempotency-key': 'has space' });
      expect(badKey.json().error.code).toBe('invalid_idempotency_key');
      expect((await stored()).length).toBe(before + 1);
    });

    it('keeps an idempotency key in the cache (tenant-prefixed, sealed, with a TTL) and durably in the tenant schema', async () => {
      const body = { collection: 'orders', data: { total: 7 } };
      const first = (await create(body, owner, { 'idempotency-key': 'cache-1' })).json();
      const me = (await send('GET', '/api/v1/me', owner)).json();
      const key = core.temporary.key(tenantId, 'idempotency', projectId, me.user.id, 'cache-1');
      expect(key.startsWith(`t:${tenantId}:idempotency:`)).toBe(true);
      expect(key).not.toContain('cache-1');
      const cached = (await core.cache.get(key))?.toString('utf8');
      expect(cached).toMatch(/^enc:v1:/);
      expect(cached).not.toContain(first.id);
      const durable = sql`delete from ${sql.id(tenantSchemaName(tenantId))}.record_idempotency where key = 'cache-1'`;

      // The durable row gone: the cache alone answers the retry.
      await durable.execute(testDb.database.db);
      const fromCache = await create(body, owner, { 'idempotency-key': 'cache-1' });
      expect([fromCache.statusCode, fromCache.json().id]).toEqual([200, first.id]);

      // The cache lost (a restart of memcached): the durable copy answers.
      const second = (await create(body, owner, { 'idempotency-key': 'cache-2' })).json();
      await core.cache.delete(core.temporary.key(tenantId, 'idempotency', projectId, me.user.id, 'cache-2'));
      const fromDatabase = await create(body, owner, { 'idempotency-key': 'cache-2' });
      expect([fromDatabase.statusCode, fromDatabase.json().id]).toEqual([200, second.id]);

      // A sealed value moved under another key does not open: that retry is a new create.
      const other = core.temporary.key(tenantId, 'idempotency', projectId, me.user.id, 'cache-3');
      await core.cache.set(other, cached!, 60_000);
      const moved = await create(body, owner, { 'idempotency-key': 'cache-3' });
      expect(moved.statusCode).toBe(201);
      expect(moved.json().id).not.toBe(first.id);
    });

    it('forgets idempotency keys after a day: the durable rows are pruned, younger ones kept', async () => {
      const body = { collection: 'orders', data: { total: 9 } };
      const old = (await create(body, owner, { 'idempotency-key': 'day-old' })).json();
      await create(body, owner, { 'idempotency-key': 'fresh' });
      const schema = sql.id(tenantSchemaName(tenantId));
      await sql`update ${schema}.record_idempotency set created_at = now() - interval '25 hours' where key = 'day-old'`.execute(
        testDb.database.db,
      );
      expect(await core.records.pruneIdempotencyKeys(tenantId)).toBeGreaterThanOrEqual(1);
      const { rows } = await sql<{
        key: string;
      }>`select key from ${schema}.record_idempotency where key in ('day-old', 'fresh')`.execute(
        testDb.database.db,
      );
      expect(rows.map((r) => r.key)).toEqual(['fresh']);
      // With the cache's copy expired too, a retry after a day is a new create.
      const me = (await send('GET', '/api/v1/me', owner)).json();
      await core.cache.delete(core.temporary.key(tenantId, 'idempotency', projectId, me.user.id, 'day-old'));
      const again = await create(body, owner, { 'idempotency-key': 'day-old' });
      expect(again.statusCode).toBe(201);
      expect(again.json().id).not.toBe(old.id);
    });

    it('lists in creation order with a cursor, by collection, with a clamped page size', async () => {
      for (let i = 0; i < 5; i++) await create({ collection: 'pages', data: { i } });
      const seen: number[] = [];
      let cursor: string | null = null;
      do {
        const page = await send(
          'GET',
          `${records()}?collection=pages&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
          owner,
        );
        expect(page.statusCode).toBe(200);
        seen.push(...page.json().items.map((r: { data: { i: number } }) => r.data.i));
        cursor = page.json().nextCursor;
      } while (cursor);
      expect(seen).toEqual([0, 1, 2, 3, 4]);
      for (const query of [
        'limit=1000000000',
        'limit=0',
        'collection=Bad-Name',
        'cursor=nonsense',
        'unknown=1',
      ]) {
        const res = await send('GET', `${records()}?${query}`, owner);
        expect({ query, status: res.statusCode }).toEqual({ query, status: 400 });
      }
    });

    it('filters on top-level fields with bound values, comparing only values of the same type', async () => {
      const people = [
        { name: 'Ada', city: 'London', visits: 12, vip: true },
        { name: 'Grace', city: 'Paris', visits: 3 },
        { name: 'Alan', city: 'London', visits: '40' },
        { name: 'Edsger', visits: 7 },
      ];
      for (const data of people) await create({ collection: 'people', data });
      const names = async (...filters: string[]) => {
        const query = filters.map((f) => `filter=${encodeURIComponent(f)}`).join('&');
        const res = await send('GET', `${records()}?collection=people&${query}`, owner);
        expect(res.statusCode).toBe(200);
        return res.json().items.map((r: { data: { name: string } }) => r.data.name);
      };
      expect(await names('city:eq:"London"')).toEqual(['Ada', 'Alan']);
      expect(await names('city:ne:"London"')).toEqual(['Grace', 'Edsger']);
      // "40" is a string: a numeric range never matches it.
      expect(await names('visits:gte:7')).toEqual(['Ada', 'Edsger']);
      expect(await names('visits:gte:7', 'city:eq:"London"')).toEqual(['Ada']);
      expect(await names('vip:eq:true')).toEqual(['Ada']);
      expect(await names(`name:eq:"x' or 1=1 --"`)).toEqual([]);
      for (const bad of [
        'city',
        'city:like:"L%"',
        'data->>city:eq:"London"',
        'city:eq:London',
        'city:eq:{"a":1}',
        'vip:gt:true',
        '1=1:eq:1',
      ]) {
        const res = await send('GET', `${records()}?filter=${encodeURIComponent(bad)}`, owner);
        expect({ bad, status: res.statusCode, code: res.json().error.code }).toEqual({
          bad,
          status: 400,
          code: 'invalid_filter',
        });
      }
      const many = Array.from({ length: 6 }, () => 'filter=a:eq:1').join('&');
      expect((await send('GET', `${records()}?${many}`, owner)).statusCode).toBe(400);
    });

    it('sorts by a top-level field over mixed types, missing last, with an exact cursor', async () => {
      const long = 'x'.repeat(300);
      const values: Array<[string, unknown]> = [
        ['three', 3],
        ['one', 1],
        ['b', 'b'],
        ['a', 'a'],
        ['null', null],
        ['true', true],
        ['array', [2, 1]],
        ['object', { x: 1 }],
        ['missing', undefined],
        ['two', 2],
        ['one again', 1],
        // Strings order by their first 128 characters: these two tie, so creation order decides.
        ['long b', `${long}b`],
        ['long a', `${long}a`],
        ['empty array', []],
        ['missing too', undefined],
        ['half', 1.5],
      ];
      for (const [name, rank] of values) {
        await create({ collection: 'ranked', data: rank === undefined ? { name } : { name, rank } });
      }
      const walk = async (sort: string, limit: number) => {
        const seen: string[] = [];
        let cursor: string | null = null;
        do {
          const query = `collection=ranked&sort=${sort}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`;
          const page = await send('GET', `${records()}?${query}`, owner);
          expect(page.statusCode, page.body).toBe(200);
          seen.push(...page.json().items.map((r: { data: { name: string } }) => r.data.name));
          cursor = page.json().nextCursor;
        } while (cursor);
        return seen;
      };
      const ascending = [
        'null',
        'a',
        'b',
        'long b',
        'long a',
        'one',
        'one again',
        'half',
        'two',
        'three',
        'true',
        'array',
        'empty array',
        'object',
        'missing',
        'missing too',
      ];
      for (const limit of [1, 2, 3, 200]) expect(await walk('rank', limit)).toEqual(ascending);
      const descending = [
        'object',
        'empty array',
        'array',
        'true',
        'three',
        'two',
        'half',
        'one again',
        'one',
        'long a',
        'long b',
        'b',
        'a',
        'null',
        'missing too',
        'missing',
      ];
      for (const limit of [1, 3, 200]) expect(await walk('-rank', limit)).toEqual(descending);
      expect(await walk('-created_at', 4)).toEqual(values.map(([name]) => name).reverse());
      expect(await walk('created_at', 5)).toEqual(values.map(([name]) => name));

      // A record added mid-walk before the cursor is not seen; one after it is, exactly once.
      const first = (await send('GET', `${records()}?collection=ranked&sort=rank&limit=6`, owner)).json();
      await create({ collection: 'ranked', data: { name: 'early', rank: 'a' } });
      await create({ collection: 'ranked', data: { name: 'late', rank: 2 } });
      const rest = await send(
        'GET',
        `${records()}?collection=ranked&sort=rank&limit=200&cursor=${first.nextCursor}`,
        owner,
      );
      const names = rest.json().items.map((r: { data: { name: string } }) => r.data.name);
      expect(names).toEqual([...ascending.slice(6, 9), 'late', ...ascending.slice(9)]);

      // Sorting composes with filters.
      const filtered = await send(
        'GET',
        `${records()}?collection=ranked&sort=-rank&filter=${encodeURIComponent('rank:lte:2')}`,
        owner,
      );
      expect(filtered.json().items.map((r: { data: { name: string } }) => r.data.name)).toEqual([
        'late',
        'two',
        'half',
        'one again',
        'one',
      ]);

      const forged = (body: unknown) => Buffer.from(JSON.stringify(body)).toString('base64url');
      for (const [query, code] of [
        ['sort=data->>rank', 'invalid_sort'],
        ['sort=-', 'invalid_sort'],
        ['sort=a.b', 'invalid_sort'],
        ['sort=--rank', 'invalid_sort'],
        [`sort=-rank&cursor=${first.nextCursor}`, 'invalid_cursor'],
        [`sort=rank&cursor=${forged({ s: 'rank', q: '1', k: { a: 1 } })}`, 'invalid_cursor'],
        [`sort=rank&cursor=${forged({ s: 'rank', q: '1', k: 'x'.repeat(300) })}`, 'invalid_cursor'],
        [`sort=rank&cursor=${forged({ s: 'rank', q: "1' or 1=1" })}`, 'invalid_cursor'],
        [`sort=rank&cursor=${'A'.repeat(3000)}`, 'invalid_request'],
      ] as const) {
        const res = await send('GET', `${records()}?${query}`, owner);
        expect({ query, status: res.statusCode, code: res.json().error.code }).toEqual({
          query,
          status: 400,
          code,
        });
      }
    });

    it('answers hostile data with a precise 400 or 413 and stores nothing', async () => {
      const target = (await create({ collection: 'c', data: { role: 'viewer' } })).json();
      const before = await stored();
      const cases: Array<[string, unknown, number, string]> = [
        ['array data', { collection: 'c', data: [1, 2] }, 400, 'record_not_object'],
        ['null data', { collection: 'c', data: null }, 400, 'record_not_object'],
        ['bad collection', { collection: '../x', data: {} }, 400, 'invalid_collection'],
        ['extra field', { collection: 'c', data: {}, projectId: otherProjectId }, 400, 'invalid_request'],
        ['NUL in a string', { collection: 'c', data: { s: 'a\u0000b' } }, 400, 'record_invalid_text'],
        ['NUL in a key', { collection: 'c', data: { 'a\u0000': 1 } }, 400, 'record_invalid_text'],
        ['lone surrogate', { collection: 'c', data: { s: '\ud800' } }, 400, 'record_invalid_text'],
        ['over 1 MiB', { collection: 'c', data: { s: 'x'.repeat(1024 * 1024) } }, 413, 'record_too_large'],
      ];
      for (const [name, body, status, code] of cases) {
        const res = await create(body);
        expect({ name, status: res.statusCode, code: res.json().error?.code }).toEqual({
          name,
          status,
          code,
        });
      }
      // 10,000 levels deep, as raw JSON (a recursive serialiser would not even build it).
      const deep = await send('POST', records(), owner, {
        raw: `{"collection":"c","data":${'{"d":'.repeat(10_000)}1${'}'.repeat(10_000)}}`,
      });
      expect([deep.statusCode, deep.json().error.code]).toEqual([400, 'record_too_deep']);
      const proto = await send('POST', records(), owner, {
        raw: '{"collection":"c","data":{"__proto__":{"admin":true}}}',
      });
      expect(proto.statusCode).toBe(400);
      const notJson = await send('POST', records(), owner, { raw: '{"collection":' });
      expect(notJson.json().error.code).toBe('malformed_json');
      // Bytes that are not UTF-8 (a lone continuation byte, an overlong form) are refused, not replaced.
      for (const bad of [[0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
        const res = await app.inject({
          method: 'POST',
          url: records(),
          headers: { authorization: `Bearer ${owner}`, 'content-type': 'application/json' },
          payload: Buffer.concat([
            Buffer.from('{"collection":"c","data":{"s":"'),
            Buffer.from(bad),
            Buffer.from('"}}'),
          ]),
        });
        expect([res.statusCode, res.json().error.code]).toEqual([400, 'invalid_utf8']);
      }
      // A repeated key, in the envelope or anywhere in the data, is refused rather than last-one-wins.
      for (const raw of [
        '{"collection":"c","collection":"d","data":{}}',
        '{"collection":"c","data":{"role":"viewer","role":"admin"}}',
        '{"collection":"c","data":{"a":[{"x":1,"\\u0078":2}]}}',
      ]) {
        const res = await send('POST', records(), owner, { raw });
        expect({ raw, status: res.statusCode, code: res.json().error.code }).toEqual({
          raw,
          status: 400,
          code: 'duplicate_json_key',
        });
      }
      const twice = await send('PUT', `${records()}/${target.id}`, owner, {
        raw: '{"data":{"role":"viewer","role":"admin"}}',
        headers: { 'if-match': '*' },
      });
      expect([twice.statusCode, twice.json().error.details]).toEqual([400, { key: 'role' }]);
      expect(await stored()).toEqual(before);
    });

    it("keeps records to their project's readers and writers", async () => {
      const { id } = (await create({ collection: 'contacts', data: { secret: 'CANARY-record' } })).json();
      // A viewer reads but does not write, even with a write key.
      expect((await send('GET', `${records()}/${id}`, viewer)).statusCode).toBe(200);
      expect((await create({ collection: 'c', data: {} }, viewer)).statusCode).toBe(403);
      const change = await send('PUT', `${records()}/${id}`, viewer, {
        body: { data: {} },
        headers: { 'if-match': '"1"' },
      });
      expect(change.statusCode).toBe(403);
      // A project the viewer is not in does not exist for them; nor does the record under it.
      for (const url of [records(otherProjectId), `${records(otherProjectId)}/${id}`]) {
        expect((await send('GET', url, viewer)).statusCode).toBe(404);
      }
    });

    it('gives another tenant 404 for every record route, leaks nothing and changes nothing', async () => {
      const { id } = (await create({ collection: 'contacts', data: { secret: 'CANARY-cross' } })).json();
      const before = await stored();
      const attempts = [
        send('GET', records(), outsider),
        send('GET', `${records()}/${id}`, outsider),
        send('POST', records(), outsider, { body: { collection: 'c', data: {} } }),
        send('PUT', `${records()}/${id}`, outsider, { body: { data: {} }, headers: { 'if-match': '"1"' } }),
        send('PATCH', `${records()}/${id}`, outsider, { body: { data: {} }, headers: { 'if-match': '*' } }),
        send('DELETE', `${records()}/${id}`, outsider, { headers: { 'if-match': '*' } }),
      ];
      for (const res of await Promise.all(attempts)) {
        expect(res.statusCode).toBe(404);
        expect(res.body).not.toContain('CANARY');
        expect(res.body).not.toContain(id);
      }
      expect(await stored()).toEqual(before);
    });
  });
}
