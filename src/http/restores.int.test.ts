import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, callAs, projectViewerKey } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { enrolStaff } from '../../test/support/staff.ts';
import { FsObjectStore } from '../adapters/object-store/object-store.fs.ts';
import type { Core } from '../main/compose.ts';
import type { App } from './app.ts';

const password = 'restores need a long password too';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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

    const records = () => `/api/v1/projects/${projectId}/records`;
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
      ({ core, testDb } = await openTestCore(kind, {
        backupLocations: ['one', 'two'].map((name) => ({
          name,
          store: new FsObjectStore({ rootDir: mkdtempSync(join(tmpdir(), `strongroom-restore-${name}-`)) }),
        })),
      }));
      app = await buildTestApp(core);
      const a = await core.tenants.create({ slug: 'restore-a', name: 'A', ownerEmail: 'owner@a.test' });
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
    }, 120_000);
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it('lets an owner restore their own tenant, as it was, into a new tenant they can sign in to', async () => {
      const restored = await callAs(app, 'POST', '/api/v1/restores', owner, {
        at: before.toISOString(),
        intoSlug: 'restore-a-copy',
      });
      expect(restored.statusCode).toBe(201);
      expect(restored.json()).toMatchObject({
        tenant: { slug: 'restore-a-copy' },
        location: 'one',
        objectsRestored: 1,
        objectsFromLiveStore: 0,
      });
      const copy = await login('restore-a-copy');
      const names = (await callAs(app, 'GET', `${records()}?limit=200`, copy))
        .json()
        .items.map((r: { data: { name: string } }) => r.data.name);
      expect(names.sort()).toEqual(['kept', 'lost']);
      // The original is untouched.
      const live = (await callAs(app, 'GET', `${records()}?limit=200`, owner)).json().items;
      expect(live.map((r: { data: { name: string } }) => r.data.name)).toEqual(['kept']);
    }, 60_000);

    it('refuses API keys, members, other tenants and bad instants, creating nothing', async () => {
      const tenantsBefore = (await callAs(app, 'GET', '/api/v1/ops/tenants?limit=200', operator)).json().items
        .length;
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
      const taken = await callAs(app, 'POST', '/api/v1/restores', owner, { ...body, intoSlug: 'restore-b' });
      expect(taken.statusCode).toBe(409);
      expect((await callAs(app, 'GET', '/api/v1/ops/tenants?limit=200', operator)).json().items).toHaveLength(
        tenantsBefore,
      );
    });

    it('lets operators restore any tenant and read backup status; support staff neither', async () => {
      const body = { at: new Date().toISOString(), intoSlug: 'restore-a-ops' };
      expect(
        (await callAs(app, 'POST', '/api/v1/ops/tenants/restore-a/restores', support, body)).statusCode,
      ).toBe(403);
      const restored = await callAs(app, 'POST', '/api/v1/ops/tenants/restore-a/restores', operator, body);
      expect(restored.statusCode).toBe(201);
      expect((await callAs(app, 'GET', '/api/v1/ops/backups/status', support)).statusCode).toBe(403);
      const status = await callAs(app, 'GET', '/api/v1/ops/backups/status', operator);
      expect(status.statusCode).toBe(200);
      expect(status.json().items.map((t: { slug: string }) => t.slug)).toContain('restore-a');
    }, 60_000);

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
  });
}
