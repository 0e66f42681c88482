import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, callAs, projectViewerKey } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { enrolStaff } from '../../test/support/staff.ts';
import { FsObjectStore } from '../adapters/object-store/object-store.fs.ts';
import type { Core } from '../main/compose.ts';
import { RestoreJobs } from '../modules/backups/restore-jobs.ts';
import { systemClock } from '../platform/clock.ts';
import type { ObjectStore } from '../ports/object-store.port.ts';
import type { App } from './app.ts';

const password = 'restores need a long password too';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
type Job = {
  id: string;
  status: string;
  phase: string;
  progress: { done: number; total: number };
  result: { tenant: { id: string; slug: string } } & Record<string, unknown>;
  error: { code: string } | null;
};

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`restore through the API on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    let owner: string;
    let ownerB: string;
    let projectId: string;
    let before: Date;
    let operator: string;
    let support: string;
    let security: string;
    let tenantA: string;
    let objects: ObjectStore;
    const written: string[] = [];

    const records = () => `/api/v1/projects/${projectId}/records`;
    /** Follows a restore job until it has finished (the app runs it in the background). */
    const finished = async (url: string, token: string): Promise<Job> => {
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(50)) {
        const job = await callAs(app, 'GET', url, token);
        expect(job.statusCode).toBe(200);
        if (['succeeded', 'failed'].includes(job.json().status)) {
          // Finished in the table; the node also audits its completion as it lets go of the job.
          await core.restoreJobs.settled();
          return job.json();
        }
      }
      throw new Error(`restore job ${url} did not finish`);
    };
    const tenantCount = async () =>
      (await callAs(app, 'GET', '/api/v1/ops/tenants?limit=200', operator)).json().items.length as number;
    const jobCount = async () =>
      Number(
        (await sql<{ n: string }>`select count(*) as n from control.restore_jobs`.execute(core.database.db))
          .rows[0]!.n,
      );
    const login = async (tenant: string) =>
      (
        await app.inject({
          method: 'POST',
          url: '/api/v1/auth/login',
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({ tenant, email: 'owner@a.test', password }),
        })
      ).json().session.token as string;

    beforeAll(async () => {
      const files = new FsObjectStore({ rootDir: mkdtempSync(join(tmpdir(), 'strongroom-restore-files-')) });
      // The attachment store, noting each key written (an in-place restore leaves intact files alone).
      objects = {
        kind: 'fs',
        put: (key, body) => {
          written.push(key);
          return files.put(key, body);
        },
        get: (key, range) => files.get(key, range),
        head: (key) => files.head(key),
        delete: (key) => files.delete(key),
        list: (prefix) => files.list(prefix),
        ping: () => files.ping(),
        close: () => files.close(),
      };
      ({ core, testDb } = await openTestCore(kind, {
        objects,
        backupLocations: ['one', 'two'].map((name) => ({
          name,
          store: new FsObjectStore({ rootDir: mkdtempSync(join(tmpdir(), `strongroom-restore-${name}-`)) }),
        })),
      }));
      app = await buildTestApp(core);
      const a = await core.tenants.create({ slug: 'restore-a', name: 'A', ownerEmail: 'owner@a.test' });
      tenantA = a.tenant.id;
      owner = (await core.identity.setupOwner({ token: a.ownerSetupToken, displayName: 'O', password }))
        .session.token;
      const b = await core.tenants.create({ slug: 'restore-b', name: 'B', ownerEmail: 'owner@b.test' });
      ownerB = (await core.identity.setupOwner({ token: b.ownerSetupToken, displayName: 'O', password }))
        .session.token;
      projectId = (await callAs(app, 'POST', '/api/v1/projects', owner, { name: 'Ledger' })).json().id;
      await callAs(app, 'POST', records(), owner, { collection: 'entries', data: { name: 'kept' } });
      const file = await app.inject({
        method: 'PUT',
        url: `/api/v1/projects/${projectId}/attachments?filename=ledger.pdf`,
        headers: { authorization: `Bearer ${owner}`, 'content-type': 'application/pdf' },
        payload: Buffer.from('%PDF-1.7 ledger'),
      });
      expect(file.statusCode).toBe(201);
      const doomed = (
        await callAs(app, 'POST', records(), owner, { collection: 'entries', data: { name: 'lost' } })
      ).json();
      await core.backups.snapshotTenant(a.tenant.id);
      await sleep(20);
      before = new Date();
      await sleep(20);
      await app.inject({
        method: 'DELETE',
        url: `${records()}/${doomed.id}`,
        headers: { authorization: `Bearer ${owner}`, 'if-match': '"1"' },
      });
      await core.backups.shipTenant(a.tenant.id);
      operator = (await enrolStaff(core, { email: 'op@ops.test', displayName: 'Op', role: 'operator' }))
        .apiKey;
      support = (await enrolStaff(core, { email: 'su@ops.test', displayName: 'Su', role: 'support' })).apiKey;
      security = (await enrolStaff(core, { email: 'se@ops.test', displayName: 'Se', role: 'security' }))
        .apiKey;
    }, 120_000);
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it('lets an owner restore their own tenant in the background into a new tenant they can sign in to', async () => {
      const requested = await callAs(app, 'POST', '/api/v1/restores', owner, {
        at: before.toISOString(),
        intoSlug: 'restore-a-copy',
      });
      expect(requested.statusCode).toBe(202);
      const queued = requested.json();
      expect(queued).toMatchObject({ tenantId: tenantA, origin: 'tenant', intoSlug: 'restore-a-copy' });
      expect(['queued', 'running', 'succeeded']).toContain(queued.status);
      expect(requested.headers.location).toBe(`/api/v1/restores/${queued.id}`);
      const job = await finished(`/api/v1/restores/${queued.id}`, owner);
      expect(job).toMatchObject({
        status: 'succeeded',
        phase: 'done',
        error: null,
        result: {
          tenant: { slug: 'restore-a-copy' },
          location: 'one',
          objectsRestored: 1,
          objectsFromLiveStore: 0,
        },
      });
      expect(job.progress.total).toBeGreaterThan(0);
      // Stored: the job row says what the API says, and the new tenant is the one it names.
      const { rows } = await sql<{ status: string; result: { tenant: { id: string } } }>`
        select status, result from control.restore_jobs where id = ${queued.id}`.execute(core.database.db);
      expect(rows).toEqual([
        { status: 'succeeded', result: expect.objectContaining({ tenant: job.result.tenant }) },
      ]);
      expect((await core.tenants.get('restore-a-copy')).id).toBe(job.result.tenant.id);
      const copy = await login('restore-a-copy');
      const names = (await callAs(app, 'GET', `${records()}?limit=200`, copy))
        .json()
        .items.map((r: { data: { name: string } }) => r.data.name);
      expect(names.sort()).toEqual(['kept', 'lost']);
      // The original is untouched.
      const live = (await callAs(app, 'GET', `${records()}?limit=200`, owner)).json().items;
      expect(live.map((r: { data: { name: string } }) => r.data.name)).toEqual(['kept']);
      // The job is listed; the request and the completion are audited in the tenant's chain.
      const listed = (await callAs(app, 'GET', '/api/v1/restores', owner)).json().items;
      expect(listed.map((j: Job) => j.id)).toContain(queued.id);
      await core.audit.flush();
      const audited = async (action: string) =>
        (await callAs(app, 'GET', `/api/v1/audit?action=${action}`, owner))
          .json()
          .items.filter((e: { resourceId: string }) => e.resourceId === queued.id);
      expect(await audited('restores.create')).toMatchObject([{ outcome: 'allow', statusCode: 202 }]);
      expect(await audited('restores.complete')).toMatchObject([
        { outcome: 'allow', actorKind: 'user', requestId: requested.headers['x-request-id'] },
      ]);
    }, 60_000);

    it('refuses API keys, members, other tenants, bad instants and taken slugs at once, queuing nothing', async () => {
      const tenantsBefore = await tenantCount();
      const jobsBefore = await jobCount();
      const body = { at: before.toISOString(), intoSlug: 'restore-a-refused' };
      const key = (
        await callAs(app, 'POST', '/api/v1/api-keys', owner, { name: 'k', access: 'write' })
      ).json().secret;
      const byKey = await callAs(app, 'POST', '/api/v1/restores', key, body);
      expect([byKey.statusCode, byKey.json().error.code]).toEqual([403, 'forbidden']);
      const member = await projectViewerKey(core, owner, projectId);
      expect((await callAs(app, 'POST', '/api/v1/restores', member, body)).statusCode).toBe(403);
      // A body naming another tenant is refused: an owner restores only their own.
      const other = await callAs(app, 'POST', '/api/v1/restores', ownerB, { ...body, tenant: 'restore-a' });
      expect(other.statusCode).toBe(400);
      const early = await callAs(app, 'POST', '/api/v1/restores', owner, {
        ...body,
        at: '2020-01-01T00:00:00Z',
      });
      expect([early.statusCode, early.json().error.code]).toEqual([400, 'restore_time_outside_window']);
      const future = await callAs(app, 'POST', '/api/v1/restores', owner, {
        ...body,
        at: new Date(Date.now() + 3_600_000).toISOString(),
      });
      expect([future.statusCode, future.json().error.code]).toEqual([400, 'restore_time_outside_window']);
      const badSlug = await callAs(app, 'POST', '/api/v1/restores', owner, {
        ...body,
        intoSlug: 'Not A Slug',
      });
      expect(badSlug.statusCode).toBe(400);
      const taken = await callAs(app, 'POST', '/api/v1/restores', owner, { ...body, intoSlug: 'restore-b' });
      expect([taken.statusCode, taken.json().error.code]).toEqual([409, 'slug_taken']);
      const nowhere = await callAs(app, 'POST', '/api/v1/ops/tenants/restore-a/restores', operator, {
        ...body,
        from: 'nowhere',
      });
      expect([nowhere.statusCode, nowhere.json().error.code]).toEqual([400, 'backup_location_unknown']);
      expect(await tenantCount()).toBe(tenantsBefore);
      expect(await jobCount()).toBe(jobsBefore);
    });

    it('reserves the slug of a pending job: a second request for it is refused', async () => {
      // A job queued on a node that has not started it yet (this core's jobs start on request).
      const idle = new RestoreJobs({
        database: core.database,
        backups: core.backups,
        clock: systemClock,
        startOnRequest: false,
      });
      const principal = (await core.identity.authenticate(owner))!.principal as Parameters<
        RestoreJobs['requestOwn']
      >[0];
      const pending = await idle.requestOwn(principal, { at: before, intoSlug: 'restore-a-pending' });
      expect(pending.status).toBe('queued');
      const second = await callAs(app, 'POST', '/api/v1/restores', owner, {
        at: before.toISOString(),
        intoSlug: 'restore-a-pending',
      });
      expect([second.statusCode, second.json().error.code]).toEqual([409, 'slug_taken']);
      // Any node's round starts it, exactly once.
      expect(await idle.runPending()).toEqual({ interrupted: 0, ran: 1 });
      expect((await idle.get(pending.id, 'all')).status).toBe('succeeded');
    }, 60_000);

    it('runs a job exactly once when several nodes pick it up at the same time', async () => {
      const nodes = [1, 2, 3].map(
        () =>
          new RestoreJobs({
            database: core.database,
            backups: core.backups,
            clock: systemClock,
            startOnRequest: false,
          }),
      );
      const job = await nodes[0]!.request(
        tenantA,
        { at: before, intoSlug: 'restore-a-once' },
        { origin: 'operator', kind: 'staff', id: 'op' },
      );
      const rounds = await Promise.all(nodes.map((node) => node.runPending()));
      expect(rounds.reduce((sum, r) => sum + r.ran, 0)).toBe(1);
      expect(await nodes[1]!.get(job.id, 'all')).toMatchObject({
        status: 'succeeded',
        result: { tenant: { slug: 'restore-a-once' } },
      });
      expect((await core.tenants.list()).filter((t) => t.slug === 'restore-a-once')).toHaveLength(1);
    }, 60_000);

    it('fails, as interrupted, a job whose node died while it ran (no live lease), and audits it', async () => {
      const id = randomUUID();
      await sql`insert into control.restore_jobs (id, tenant_id, origin, requested_by_kind, requested_by_id,
          restore_at, into_slug, status, phase, holder, created_at, started_at)
        values (${id}, ${tenantA}, 'tenant', 'user', 'someone', now(), 'restore-a-dead', 'running', 'journal',
          'gone-host:1:deadbeef', now(), now())`.execute(core.database.db);
      // A job that runs, with its lease held, is left alone.
      const alive = randomUUID();
      await sql`insert into control.restore_jobs (id, tenant_id, origin, requested_by_kind, requested_by_id,
          restore_at, into_slug, status, phase, holder, created_at, started_at)
        values (${alive}, ${tenantA}, 'tenant', 'user', 'someone', now(), 'restore-a-alive', 'running', 'snapshot',
          'live-host:1:cafe', now(), now())`.execute(core.database.db);
      await sql`insert into control.leases (name, holder, acquired_at, expires_at)
        values (${`restore-job:${alive}`}, 'live-host:1:cafe', now(), now() + interval '1 minute')`.execute(
        core.database.db,
      );
      expect(await core.restoreJobs.failInterrupted()).toBe(1);
      const dead = await finished(`/api/v1/restores/${id}`, owner);
      expect(dead).toMatchObject({ status: 'failed', error: { code: 'restore_interrupted' } });
      expect((await core.restoreJobs.get(alive, 'all')).status).toBe('running');
      await core.audit.flush();
      const completions = (await callAs(app, 'GET', '/api/v1/audit?action=restores.complete', owner))
        .json()
        .items.filter((e: { resourceId: string }) => e.resourceId === id);
      expect(completions).toMatchObject([{ outcome: 'error', errorCode: 'restore_interrupted' }]);
      await sql`delete from control.leases where name = ${`restore-job:${alive}`}`.execute(core.database.db);
      await sql`delete from control.restore_jobs where id = ${alive}`.execute(core.database.db);
    });

    it('lets operators restore any tenant in the background and read backup status; support staff neither', async () => {
      const body = { at: new Date().toISOString(), intoSlug: 'restore-a-ops' };
      expect(
        (await callAs(app, 'POST', '/api/v1/ops/tenants/restore-a/restores', support, body)).statusCode,
      ).toBe(403);
      const requested = await callAs(app, 'POST', '/api/v1/ops/tenants/restore-a/restores', operator, body);
      expect(requested.statusCode).toBe(202);
      expect(requested.headers.location).toBe(`/api/v1/ops/restores/${requested.json().id}`);
      const job = await finished(`/api/v1/ops/restores/${requested.json().id}`, operator);
      expect(job).toMatchObject({ status: 'succeeded', result: { tenant: { slug: 'restore-a-ops' } } });
      expect((await core.tenants.get('restore-a-ops')).id).toBe(job.result.tenant.id);
      // Staff list every job; the security team reads them too; support staff do not.
      const listed = (await callAs(app, 'GET', '/api/v1/ops/restores?tenantId=restore-a', security)).json()
        .items;
      expect(listed.map((j: Job) => j.id)).toContain(job.id);
      expect((await callAs(app, 'GET', `/api/v1/ops/restores/${job.id}`, support)).statusCode).toBe(403);
      expect((await callAs(app, 'GET', '/api/v1/ops/restores', support)).statusCode).toBe(403);
      // The completion is on the platform chain, by the operator.
      await core.audit.flush();
      const { rows } = await sql<{ actor_kind: string; outcome: string }>`
        select actor_kind, outcome from control.audit_log
        where action = 'restores.complete' and resource_id = ${job.id}`.execute(core.database.db);
      expect(rows).toEqual([{ actor_kind: 'staff', outcome: 'allow' }]);
      expect((await callAs(app, 'GET', '/api/v1/ops/backups/status', support)).statusCode).toBe(403);
      const status = await callAs(app, 'GET', '/api/v1/ops/backups/status', operator);
      expect(status.statusCode).toBe(200);
      expect(status.json().items.map((t: { slug: string }) => t.slug)).toContain('restore-a');
    }, 60_000);

    it('keeps restore jobs to their tenant: another tenant cannot read or detect them', async () => {
      const mine = (await callAs(app, 'GET', '/api/v1/restores', owner)).json().items as Job[];
      expect(mine.length).toBeGreaterThan(0);
      const [job] = mine;
      const theirs = await callAs(app, 'GET', `/api/v1/restores/${job!.id}`, ownerB);
      const absent = await callAs(app, 'GET', `/api/v1/restores/${randomUUID()}`, ownerB);
      // Someone else's job and no job at all answer alike.
      expect([theirs.statusCode, theirs.json().error.code]).toEqual([404, 'restore_job_not_found']);
      expect({ ...theirs.json().error, requestId: null }).toEqual({
        ...absent.json().error,
        requestId: null,
      });
      expect((await callAs(app, 'GET', '/api/v1/restores/not-a-uuid', ownerB)).statusCode).toBe(404);
      expect((await callAs(app, 'GET', '/api/v1/restores', ownerB)).json().items).toEqual([]);
      // Jobs an operator started for the tenant are the operators' own: the tenant lists only its requests.
      expect(mine.every((j) => (j as Job & { origin: string }).origin === 'tenant')).toBe(true);
      const opsJob = (await callAs(app, 'GET', '/api/v1/ops/restores', operator))
        .json()
        .items.find((j: Job & { origin: string }) => j.origin === 'operator');
      expect((await callAs(app, 'GET', `/api/v1/restores/${opsJob.id}`, owner)).statusCode).toBe(404);
      // Members and API keys of the tenant itself cannot read its restore jobs either.
      const member = await projectViewerKey(core, owner, projectId);
      expect((await callAs(app, 'GET', `/api/v1/restores/${job!.id}`, member)).statusCode).toBe(403);
      expect((await callAs(app, 'GET', '/api/v1/restores', member)).statusCode).toBe(403);
    });

    it('lets operators restore a tenant in place, then undo or confirm it; support staff cannot', async () => {
      const base = '/api/v1/ops/tenants/restore-a/restores/in-place';
      const names = async (token: string) =>
        (await callAs(app, 'GET', `${records()}?limit=200`, token))
          .json()
          .items.map((r: { data: { name: string } }) => r.data.name)
          .sort();
      const body = { at: before.toISOString() };
      expect((await callAs(app, 'POST', base, support, body)).statusCode).toBe(403);
      const swapped = await callAs(app, 'POST', base, operator, body);
      expect(swapped.statusCode).toBe(200);
      expect(swapped.json()).toMatchObject({ tenant: { slug: 'restore-a' }, objectsRestored: 1 });
      // Sessions are not restored (nor cached on): everyone signs in again, to the data as it was.
      expect((await callAs(app, 'GET', records(), owner)).statusCode).toBe(401);
      expect(await names(await login('restore-a'))).toEqual(['kept', 'lost']);
      const again = await callAs(app, 'POST', base, operator, body);
      expect([again.statusCode, again.json().error.code]).toEqual([409, 'restore_unconfirmed']);
      expect((await callAs(app, 'POST', `${base}/undo`, operator)).statusCode).toBe(200);
      // Undone: the previous data, its sessions included, is back.
      expect(await names(owner)).toEqual(['kept']);
      const nothing = await callAs(app, 'POST', `${base}/confirm`, operator);
      expect([nothing.statusCode, nothing.json().error.code]).toEqual([404, 'restore_nothing_kept']);
    }, 60_000);

    it('restores in place without rewriting attachment files the store has intact; a damaged or missing one is rewritten', async () => {
      const prefix = `tenants/${tenantA}/`;
      const keys: string[] = [];
      for await (const info of objects.list(prefix)) keys.push(info.key);
      expect(keys).toHaveLength(1);
      const [key] = keys as [string];
      const original = Buffer.concat(await (await objects.get(key)).toArray());
      const inPlace = async () => {
        written.length = 0;
        const result = await core.backups.restoreInPlace({ tenant: 'restore-a', at: before });
        await core.backups.confirmInPlaceRestore('restore-a');
        return { result, rewritten: written.filter((k) => k.startsWith(prefix)) };
      };
      const intact = await inPlace();
      expect(intact.result).toMatchObject({ objectsRestored: 1, objectsUnchanged: 1 });
      expect(intact.rewritten).toEqual([]);

      const damaged = Buffer.from(original);
      damaged[damaged.length >> 1]! ^= 0x01;
      await objects.put(key, damaged);
      const repaired = await inPlace();
      expect(repaired.result).toMatchObject({ objectsRestored: 1, objectsUnchanged: 0 });
      expect(repaired.rewritten).toEqual([key]);
      expect(Buffer.concat(await (await objects.get(key)).toArray())).toEqual(original);

      await objects.delete(key);
      const replaced = await inPlace();
      expect(replaced.result).toMatchObject({ objectsRestored: 1, objectsUnchanged: 0 });
      expect(replaced.rewritten).toEqual([key]);
      expect(Buffer.concat(await (await objects.get(key)).toArray())).toEqual(original);
    }, 120_000);
  });
}
