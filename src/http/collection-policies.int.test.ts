import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, projectViewerKey } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { tenantSchemaName } from '../db/tenant-schema.ts';
import type { Core } from '../main/compose.ts';
import type { App } from './app.ts';

const password = 'policies need a long password too';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`collection policies on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    let tenantId: string;
    let ownerId: string;
    let owner: string;
    let viewer: string;
    let readKey: string;
    let outsider: string;
    let projectId: string;
    let otherProjectId: string;

    const send = (
      method: string,
      url: string,
      token: string,
      options: { body?: unknown; headers?: Record<string, string> } = {},
    ) =>
      app.inject({
        method: method as 'GET',
        url,
        headers: {
          authorization: `Bearer ${token}`,
          ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...options.headers,
        },
        ...(options.body !== undefined ? { payload: JSON.stringify(options.body) } : {}),
      });
    const records = (pid = projectId) => `/api/v1/projects/${pid}/records`;
    const policy = (collection: string, pid = projectId) =>
      `/api/v1/projects/${pid}/collections/${collection}/policy`;
    const setPolicy = async (
      collection: string,
      body: { sensitive?: string[]; personal?: string[] },
      ifMatch?: string,
      pid = projectId,
    ) =>
      send('PUT', policy(collection, pid), owner, { body, headers: ifMatch ? { 'if-match': ifMatch } : {} });
    const create = async (collection: string, data: unknown, pid = projectId) => {
      const res = await send('POST', records(pid), owner, { body: { collection, data } });
      expect(res.statusCode, res.body).toBe(201);
      return res.json() as { id: string; version: number; data: Record<string, unknown> };
    };
    /** The records' data as stored, read straight from the tenant's schema. */
    const rawRows = async (where: { collection?: string; id?: string } = {}) =>
      core.withTenant(tenantId, async (scope) => {
        const result = await sql<{ id: string; collection: string; project_id: string; text: string }>`
          select id, collection, project_id, data::text as text from records
          where (${where.collection ?? null}::text is null or collection = ${where.collection ?? null})
            and (${where.id ?? null}::uuid is null or id = ${where.id ?? null})
          order by seq`.execute(scope.trx);
        return result.rows.map((row) => ({ ...row, data: JSON.parse(row.text) as Record<string, unknown> }));
      });
    const rawSql = (query: ReturnType<typeof sql>) =>
      core.withTenant(tenantId, (scope) => query.execute(scope.trx));
    const policyRows = async () =>
      core.withTenant(
        tenantId,
        async (scope) =>
          (
            await sql<{ collection: string; version: number }>`
            select collection, version from collection_policies order by collection, version`.execute(
              scope.trx,
            )
          ).rows,
      );

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      app = await buildTestApp(core);
      const a = await core.tenants.create({ slug: 'policies-a', name: 'A', ownerEmail: 'owner@a.test' });
      tenantId = a.tenant.id;
      owner = (await core.identity.setupOwner({ token: a.ownerSetupToken, displayName: 'O', password }))
        .session.token;
      const b = await core.tenants.create({ slug: 'policies-b', name: 'B', ownerEmail: 'owner@b.test' });
      outsider = (await core.identity.setupOwner({ token: b.ownerSetupToken, displayName: 'B', password }))
        .session.token;
      projectId = (await send('POST', '/api/v1/projects', owner, { body: { name: 'CRM' } })).json().id;
      otherProjectId = (await send('POST', '/api/v1/projects', owner, { body: { name: 'Other' } })).json().id;
      const principal = (await core.identity.authenticate(owner))!.principal;
      ownerId = principal.userId;
      viewer = await projectViewerKey(core, owner, projectId);
      readKey = (await core.identity.createApiKey(principal, { name: 'owner read key', access: 'read' }))
        .secret;
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it('starts empty, then writes a new version per change with If-Match as for records', async () => {
      const empty = await send('GET', policy('orders'), owner);
      expect(empty.statusCode).toBe(200);
      expect(empty.headers.etag).toBeUndefined();
      expect(empty.json()).toEqual({
        projectId,
        collection: 'orders',
        version: 0,
        sensitive: [],
        personal: [],
        createdBy: null,
        createdAt: null,
      });
      // Nothing to match yet: If-Match (even *) fails.
      expect((await setPolicy('orders', { sensitive: ['card'] }, '*')).statusCode).toBe(412);

      const first = await setPolicy('orders', { sensitive: ['card'], personal: ['email'] });
      expect([first.statusCode, first.headers.etag]).toEqual([200, '"1"']);
      expect(first.json()).toMatchObject({
        version: 1,
        sensitive: ['card'],
        personal: ['email'],
        createdBy: ownerId,
      });
      const missing = await setPolicy('orders', { sensitive: [] });
      expect([missing.statusCode, missing.json().error.code]).toEqual([428, 'precondition_required']);
      const stale = await setPolicy('orders', { sensitive: [] }, '"7"');
      expect([stale.statusCode, stale.json().error.code]).toEqual([412, 'precondition_failed']);
      const second = await setPolicy('orders', { personal: ['email', 'phone'] }, '"1"');
      expect([second.statusCode, second.headers.etag]).toEqual([200, '"2"']);
      expect(second.json()).toMatchObject({ sensitive: [], personal: ['email', 'phone'] });
      const third = await setPolicy('orders', { sensitive: ['card'] }, '*');
      expect(third.json().version).toBe(3);

      const read = await send('GET', policy('orders'), owner);
      expect([read.headers.etag, read.json().sensitive, read.json().personal]).toEqual(['"3"', ['card'], []]);
      const versions = await send('GET', `${policy('orders')}/versions?limit=2`, owner);
      expect(versions.json().items.map((v: { version: number }) => v.version)).toEqual([3, 2]);
      expect(versions.json().nextBefore).toBe(2);
      const older = await send('GET', `${policy('orders')}/versions?before=2`, owner);
      expect(older.json()).toMatchObject({
        items: [{ version: 1, sensitive: ['card'], personal: ['email'], createdBy: ownerId }],
        nextBefore: null,
      });
      expect((await policyRows()).filter((r) => r.collection === 'orders').map((r) => r.version)).toEqual([
        1, 2, 3,
      ]);
    });

    it('refuses a malformed policy with a precise 400 and stores nothing', async () => {
      const before = await policyRows();
      const cases: Array<[string, string, unknown, string]> = [
        ['nested name', 'c', { sensitive: ['a.b'] }, 'invalid_policy'],
        ['operator-looking name', 'c', { sensitive: ["x' or 1=1"] }, 'invalid_policy'],
        ['leading digit', 'c', { personal: ['1a'] }, 'invalid_policy'],
        ['listed twice', 'c', { sensitive: ['a', 'a'] }, 'invalid_policy'],
        ['too many', 'c', { sensitive: Array.from({ length: 101 }, (_, i) => `f${i}`) }, 'invalid_request'],
        ['not a list', 'c', { sensitive: 'ssn' }, 'invalid_request'],
        ['unknown member', 'c', { sensitive: [], public: ['x'] }, 'invalid_request'],
        ['bad collection', 'Bad-Name', { sensitive: [] }, 'invalid_collection'],
      ];
      for (const [name, collection, body, code] of cases) {
        const res = await send('PUT', policy(collection), owner, { body });
        expect({ name, status: res.statusCode, code: res.json().error?.code }).toEqual({
          name,
          status: 400,
          code,
        });
      }
      const dup = await app.inject({
        method: 'PUT',
        url: policy('c'),
        headers: { authorization: `Bearer ${owner}`, 'content-type': 'application/json' },
        payload: '{"sensitive":["a"],"sensitive":[]}',
      });
      expect(dup.json().error.code).toBe('duplicate_json_key');
      expect(await policyRows()).toEqual(before);
    });

    it('stores sensitive fields encrypted and returns them decrypted (canary)', async () => {
      const canary = `CANARY-${randomBytes(8).toString('hex')}`;
      expect(
        (await setPolicy('contacts', { sensitive: ['ssn', 'notes'], personal: ['email'] })).statusCode,
      ).toBe(200);
      const data = {
        name: 'Ada',
        ssn: canary,
        notes: { text: `${canary}-notes`, n: [1, true, null] },
        email: 'a@x',
      };
      const created = await create('contacts', data);
      expect(created.data).toEqual(data);

      const [row] = await rawRows({ id: created.id });
      expect(row!.text).not.toContain(canary);
      expect(row!.data.ssn).toMatch(/^enc:v1:1:[A-Za-z0-9+/]+={0,2}$/);
      expect(row!.data.notes).toMatch(/^enc:v1:1:/);
      expect([row!.data.name, row!.data.email]).toEqual(['Ada', 'a@x']);

      const read = await send('GET', `${records()}/${created.id}`, owner);
      expect(read.json().data).toEqual(data);
      const listed = await send('GET', `${records()}?collection=contacts`, viewer);
      expect(listed.json().items.find((r: { id: string }) => r.id === created.id).data).toEqual(data);

      // A merge patch reaches into a sensitive object; the result is sealed again.
      const patched = await send('PATCH', `${records()}/${created.id}`, owner, {
        body: { data: { notes: { n: null, more: canary } } },
        headers: { 'if-match': '"1"' },
      });
      expect(patched.json().data.notes).toEqual({ text: `${canary}-notes`, more: canary });
      const replaced = await send('PUT', `${records()}/${created.id}`, owner, {
        body: { data: { name: 'Ada', ssn: 42 } },
        headers: { 'if-match': '"2"' },
      });
      expect(replaced.json().data).toEqual({ name: 'Ada', ssn: 42 });
      const [after] = await rawRows({ id: created.id });
      expect(after!.text).not.toContain(canary);
      expect(after!.data.ssn).toMatch(/^enc:v1:1:/);
      expect((await send('GET', `${records()}/${created.id}`, owner)).json().data).toEqual({
        name: 'Ada',
        ssn: 42,
      });

      // An idempotent create replays decrypted, and does not keep a plain hash of the sensitive value.
      const body = { collection: 'contacts', data: { ssn: `${canary}-2` } };
      const headers = { 'idempotency-key': 'contact-2' };
      const first = await send('POST', records(), owner, { body, headers });
      const retry = await send('POST', records(), owner, { body, headers });
      expect([first.statusCode, retry.statusCode, retry.json().data]).toEqual([201, 200, body.data]);
      const hashes = await core.withTenant(
        tenantId,
        async (scope) =>
          (
            await sql<{ request_hash: Uint8Array }>`select request_hash from record_idempotency`.execute(
              scope.trx,
            )
          ).rows,
      );
      const plain = createHash('sha256')
        .update(JSON.stringify([body.collection, body.data]))
        .digest();
      expect(hashes.some((h) => Buffer.from(h.request_hash).equals(plain))).toBe(false);
    });

    it('refuses filters and sorts on sensitive fields by name, with or without a collection', async () => {
      await setPolicy('patients', { sensitive: ['diagnosis'] });
      await create('patients', { name: 'p1', diagnosis: 'flu', age: 30 });
      const cases: Array<[string, string]> = [
        ['collection=patients&filter=diagnosis:eq:"flu"', 'field_not_filterable'],
        ['filter=diagnosis:ne:null', 'field_not_filterable'],
        ['collection=patients&sort=diagnosis', 'field_not_sortable'],
        ['sort=-diagnosis', 'field_not_sortable'],
      ];
      for (const [query, code] of cases) {
        const res = await send('GET', `${records()}?${query}`, owner);
        expect({
          query,
          status: res.statusCode,
          code: res.json().error.code,
          field: res.json().error.details,
        }).toEqual({ query, status: 400, code, field: { field: 'diagnosis' } });
      }
      // Other fields, and the same name in another project, stay filterable.
      const ok = await send('GET', `${records()}?collection=patients&filter=age:gte:18&sort=-age`, owner);
      expect(ok.json().items.map((r: { data: { name: string } }) => r.data.name)).toEqual(['p1']);
      const other = await send('GET', `${records(otherProjectId)}?filter=diagnosis:eq:"flu"`, owner);
      expect(other.statusCode).toBe(200);
    });

    it('encrypts existing values when a field becomes sensitive, and decrypts them when it stops', async () => {
      const canary = `CANARY-${randomBytes(8).toString('hex')}`;
      // More than one re-encryption batch (100), some without the field, and the same field elsewhere.
      const made: Array<{ id: string; version: number }> = [];
      for (let i = 0; i < 230; i++) {
        made.push(await create('people', i % 10 === 0 ? { i } : { i, secret: `${canary}-${i}`, n: i }));
      }
      await create('other', { secret: `${canary}-other` });
      await create('people', { secret: `${canary}-elsewhere` }, otherProjectId);
      const peopleBefore = await rawRows({ collection: 'people' });

      const marked = await setPolicy('people', { sensitive: ['secret', 'n'] });
      expect(marked.statusCode).toBe(200);
      const people = (await rawRows({ collection: 'people' })).filter((r) => r.project_id === projectId);
      expect(people).toHaveLength(230);
      for (const row of people) {
        expect(row.text).not.toContain(canary);
        if (row.data.i !== undefined && (row.data.i as number) % 10 !== 0) {
          expect(row.data.secret).toMatch(/^enc:v1:1:/);
          expect(row.data.n).toMatch(/^enc:v1:1:/);
        } else expect(Object.keys(row.data)).toEqual(['i']);
      }
      // Only that collection of that project changed.
      expect((await rawRows({ collection: 'other' }))[0]!.text).toContain(canary);
      expect(
        (await rawRows({ collection: 'people' })).find((r) => r.project_id === otherProjectId)!.text,
      ).toContain(canary);
      // The records did not change for their readers: same data, same versions.
      const listed = await send('GET', `${records()}?collection=people&limit=200`, owner);
      expect(
        listed
          .json()
          .items.slice(0, 3)
          .map((r: { data: unknown; version: number }) => [r.data, r.version]),
      ).toEqual([
        [{ i: 0 }, 1],
        [{ i: 1, secret: `${canary}-1`, n: 1 }, 1],
        [{ i: 2, secret: `${canary}-2`, n: 2 }, 1],
      ]);
      const filter = await send('GET', `${records()}?collection=people&filter=n:gte:5`, owner);
      expect(filter.json().error.code).toBe('field_not_filterable');

      const unmarked = await setPolicy('people', { sensitive: ['n'] }, '"1"');
      expect(unmarked.statusCode).toBe(200);
      const plainAgain = (await rawRows({ collection: 'people' })).filter((r) => r.project_id === projectId);
      expect(plainAgain.map((r) => r.data.secret)).toEqual(
        peopleBefore.filter((r) => r.project_id === projectId).map((r) => r.data.secret),
      );
      expect(plainAgain.every((r) => r.data.n === undefined || String(r.data.n).startsWith('enc:v1:'))).toBe(
        true,
      );
      const found = await send(
        'GET',
        `${records()}?collection=people&filter=${encodeURIComponent(`secret:eq:"${canary}-7"`)}`,
        owner,
      );
      expect(found.json().items.map((r: { id: string }) => r.id)).toEqual([made[7]!.id]);
    });

    it('never writes plaintext of a field made sensitive while records are being written', async () => {
      // The policy change starts among the writes, so some run before it, some during, some after.
      const count = 40;
      const started = [];
      for (let i = 0; i < count; i++) {
        if (i === 12) started.push(setPolicy('racing', { sensitive: ['secret'] }));
        const data = { i, secret: `CANARY-race-${i}` };
        started.push(send('POST', records(), owner, { body: { collection: 'racing', data } }));
      }
      const results = await Promise.all(started);
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, ...Array(count).fill(201)]);
      const rows = await rawRows({ collection: 'racing' });
      expect(rows).toHaveLength(count);
      for (const row of rows) expect(row.text).not.toContain('CANARY-race');
      const listed = await send('GET', `${records()}?collection=racing&limit=50`, owner);
      expect(new Set(listed.json().items.map((r: { data: { secret: string } }) => r.data.secret)).size).toBe(
        count,
      );
    });

    it('makes a write that waited for a policy change seal with the new policy', async () => {
      // Plays a policy change by hand on its own connection: lock the project row, write version 1,
      // and hold the transaction open while a record is created. The create must wait for it and
      // then encrypt, though the policy did not exist when it started.
      const schema = sql.id(tenantSchemaName(tenantId));
      const existing = await create('held', { a: 1 });
      const { pending } = await core.database.db.connection().execute(async (connection) => {
        await sql`begin`.execute(connection);
        await sql`select id from ${schema}.projects where id = ${projectId} for update`.execute(connection);
        await sql`insert into ${schema}.collection_policies (project_id, collection, version, sensitive, personal, created_by)
          values (${projectId}, 'held', 1, '{secret}', '{}', ${ownerId})`.execute(connection);
        const pending = Promise.all([
          send('POST', records(), owner, { body: { collection: 'held', data: { secret: 'CANARY-held' } } }),
          send('PUT', `${records()}/${existing.id}`, owner, {
            body: { data: { secret: 'CANARY-held-put' } },
            headers: { 'if-match': '"1"' },
          }),
        ]);
        let settled = false;
        void pending.then(() => {
          settled = true;
        });
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(settled).toBe(false);
        await sql`commit`.execute(connection);
        // Wrapped: returning the promise itself would hold the connection until it settles.
        return { pending };
      });
      const [created, replaced] = await pending;
      expect([created.statusCode, replaced.statusCode]).toEqual([201, 200]);
      const rows = await rawRows({ collection: 'held' });
      expect(rows).toHaveLength(2);
      for (const row of rows) expect(row.text).not.toContain('CANARY');
      expect((await send('GET', `${records()}/${created.json().id}`, owner)).json().data).toEqual({
        secret: 'CANARY-held',
      });
      expect((await send('GET', `${records()}/${existing.id}`, owner)).json().data).toEqual({
        secret: 'CANARY-held-put',
      });
    });

    it('answers integrity_error for a value that was tampered with or moved, and serves nothing of it', async () => {
      await setPolicy('vault', { sensitive: ['pin', 'other'] });
      const a = await create('vault', { pin: 'CANARY-pin-a', other: 'x' });
      const b = await create('vault', { pin: 'CANARY-pin-b' });
      const c = await create('vault', { pin: 'CANARY-pin-c' });
      const d = await create('vault', { pin: 'CANARY-pin-d' });
      const storedPin = (await rawRows({ id: a.id }))[0]!.data.pin as string;
      const setField = (id: string, field: string, value: unknown) =>
        rawSql(
          sql`update records set data = jsonb_set(data, ${`{${field}}`}::text[], ${JSON.stringify(value)}::jsonb) where id = ${id}`,
        );
      // Another record's ciphertext; another field's; one flipped character; plaintext.
      await setField(b.id, 'pin', storedPin);
      await setField(a.id, 'other', storedPin);
      const flipped = storedPin.slice(0, -3) + (storedPin.at(-3) === 'A' ? 'B' : 'A') + storedPin.slice(-2);
      await setField(c.id, 'pin', flipped);
      await setField(d.id, 'pin', 'CANARY-plain');
      for (const [id, field] of [
        [b.id, 'pin'],
        [a.id, 'other'],
        [c.id, 'pin'],
        [d.id, 'pin'],
      ] as const) {
        const res = await send('GET', `${records()}/${id}`, owner);
        expect({ status: res.statusCode, error: res.json().error }).toMatchObject({
          status: 502,
          error: { code: 'integrity_error', details: { recordId: id, field } },
        });
        expect(res.body).not.toContain('CANARY');
      }
      const list = await send('GET', `${records()}?collection=vault`, owner);
      expect([list.statusCode, list.json().error.code]).toEqual([502, 'integrity_error']);
      expect(list.body).not.toContain('CANARY');
      // A patch needs the old value and fails; a replacement does not, and repairs the record.
      const patch = await send('PATCH', `${records()}/${b.id}`, owner, {
        body: { data: { note: 1 } },
        headers: { 'if-match': '*' },
      });
      expect(patch.json().error.code).toBe('integrity_error');
      const repair = await send('PUT', `${records()}/${b.id}`, owner, {
        body: { data: { pin: 'new' } },
        headers: { 'if-match': '*' },
      });
      expect([repair.statusCode, repair.json().data]).toEqual([200, { pin: 'new' }]);
      expect((await send('GET', `${records()}/${b.id}`, owner)).json().data).toEqual({ pin: 'new' });
    });

    it('lets viewers read policies but not set them; read keys cannot either; other tenants see nothing', async () => {
      await setPolicy('guarded', { sensitive: ['s'], personal: ['CANARY_field'] });
      const before = await policyRows();
      expect((await send('GET', policy('guarded'), viewer)).json().personal).toEqual(['CANARY_field']);
      expect((await send('GET', `${policy('guarded')}/versions`, viewer)).statusCode).toBe(200);
      for (const token of [viewer, readKey]) {
        const res = await send('PUT', policy('guarded'), token, {
          body: { sensitive: [] },
          headers: { 'if-match': '*' },
        });
        expect([res.statusCode, res.json().error.code]).toEqual([403, 'forbidden']);
      }
      // The viewer is not in the other project: it does not exist for them.
      expect((await send('GET', policy('guarded', otherProjectId), viewer)).statusCode).toBe(404);
      for (const [method, url] of [
        ['GET', policy('guarded')],
        ['GET', `${policy('guarded')}/versions`],
        ['PUT', policy('guarded')],
        ['PUT', policy('fresh')],
      ] as const) {
        const res = await send(method, url, outsider, {
          ...(method === 'PUT' ? { body: { sensitive: [] }, headers: { 'if-match': '*' } } : {}),
        });
        expect(res.statusCode).toBe(404);
        expect(res.body).not.toContain('CANARY');
        expect(res.body).not.toContain(projectId);
      }
      const withoutIfMatch = await send('PUT', policy('fresh'), outsider, { body: { sensitive: ['x'] } });
      expect(withoutIfMatch.statusCode).toBe(404);
      expect(await policyRows()).toEqual(before);
    });
  });
}
