import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, callAs, projectViewerKey } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { enrolStaff } from '../../test/support/staff.ts';
import type { Core } from '../main/compose.ts';
import type { App } from './app.ts';

const password = 'consent needs a long password too';

/** The outbox's messages, their quoted-printable bodies decoded. */
function outbox(dir: string): string[] {
  return readdirSync(dir).map((file) =>
    readFileSync(join(dir, file), 'utf8')
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
  );
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(
    `support access requests (the lockbox) on ${kind.name}${kind.skipReason}`,
    () => {
      let core: Core;
      let testDb: TestDatabase;
      let app: App;
      let outboxDir: string;
      let nowMs = Date.now();
      const owner: Record<'a' | 'b', string> = { a: '', b: '' };
      const tenantIds: Record<'a' | 'b', string> = { a: '', b: '' };
      let projectId: string;
      let ownerKey: string;
      let memberKey: string;
      const staff: Record<'support' | 'operator' | 'security' | 'developer', string> = {
        support: '',
        operator: '',
        security: '',
        developer: '',
      };

      const ask = (body: Record<string, unknown>, key = staff.support) =>
        callAs(app, 'POST', '/api/v1/ops/access-requests', key, {
          tenant: 'lockbox-a',
          reason: 'Customer reports a broken invoice export (ticket 4711)',
          scope: { kind: 'projects', projectIds: [projectId] },
          ...body,
        });
      const decide = (id: string, verb: 'approve' | 'deny' | 'revoke', token = owner.a) =>
        callAs(app, 'POST', `/api/v1/access-requests/${id}/${verb}`, token);
      const statusOf = async (id: string) =>
        (await callAs(app, 'GET', `/api/v1/access-requests/${id}`, owner.a)).json().status;

      beforeAll(async () => {
        ({ core, testDb, outboxDir } = await openTestCore(kind, { clock: { now: () => new Date(nowMs) } }));
        app = await buildTestApp(core);
        for (const name of ['a', 'b'] as const) {
          const created = await core.tenants.create({
            slug: `lockbox-${name}`,
            name: `Tenant ${name.toUpperCase()}`,
            ownerEmail: `owner@${name}.test`,
          });
          tenantIds[name] = created.tenant.id;
          owner[name] = (
            await core.identity.setupOwner({ token: created.ownerSetupToken, displayName: 'O', password })
          ).session.token;
        }
        projectId = (await callAs(app, 'POST', '/api/v1/projects', owner.a, { name: 'Invoices' })).json().id;
        ownerKey = (
          await callAs(app, 'POST', '/api/v1/api-keys', owner.a, { name: 'k', access: 'write' })
        ).json().secret;
        memberKey = await projectViewerKey(core, owner.a, projectId);
        for (const role of ['support', 'operator', 'security', 'developer'] as const) {
          staff[role] = (
            await enrolStaff(core, { email: `${role}@ops.test`, displayName: role, role })
          ).apiKey;
        }
      });
      afterAll(async () => {
        await app?.close();
        await testDb?.close();
      });

      it("records a staff request, tells the tenant's owners by e-mail, and shows it to that tenant only", async () => {
        const asked = await ask({ ticket: 'SUP-4711' });
        expect(asked.statusCode).toBe(201);
        const request = asked.json();
        expect(request).toMatchObject({
          tenantId: tenantIds.a,
          staff: { email: 'support@ops.test', role: 'support' },
          scope: { kind: 'projects', projectIds: [projectId] },
          access: 'read',
          durationMinutes: 480,
          status: 'pending',
          ticket: 'SUP-4711',
        });
        expect(new Date(request.pendingUntil).getTime() - new Date(request.requestedAt).getTime()).toBe(
          4 * 86_400_000,
        );
        const mails = readdirSync(outboxDir).map((file) => readFileSync(join(outboxDir, file), 'utf8'));
        const mail = mails.find((text) => text.includes(request.id));
        expect(mail).toContain('owner@a.test');
        expect(mail).toContain('broken invoice export');
        expect(mails.some((text) => text.includes('owner@b.test'))).toBe(false);

        const listed = await callAs(app, 'GET', '/api/v1/access-requests', owner.a);
        expect(listed.json().items.map((r: { id: string }) => r.id)).toContain(request.id);
        // Tenant B neither sees nor can reach it, and cannot tell it exists.
        expect((await callAs(app, 'GET', '/api/v1/access-requests', owner.b)).json().items).toEqual([]);
        const fromB = await callAs(app, 'GET', `/api/v1/access-requests/${request.id}`, owner.b);
        const missing = await callAs(
          app,
          'GET',
          '/api/v1/access-requests/7d3f0c7e-1b7e-4e38-9c1f-6a1f2b3c4d5e',
          owner.b,
        );
        expect([fromB.statusCode, fromB.json().error.code]).toEqual([
          missing.statusCode,
          missing.json().error.code,
        ]);
        expect((await decide(request.id, 'approve', owner.b)).statusCode).toBe(404);
        expect(await statusOf(request.id)).toBe('pending');
        // The requester follows their own requests.
        const mine = await callAs(app, 'GET', '/api/v1/ops/access-requests', staff.support);
        expect(mine.json().items.map((r: { id: string }) => r.id)).toContain(request.id);
        expect(
          (await callAs(app, 'GET', '/api/v1/ops/access-requests', staff.operator)).json().items,
        ).toEqual([]);
      });

      it('lets only an owner or admin with a session decide: not members, API keys, staff, or a cookie without the CSRF header', async () => {
        const { id } = (await ask({})).json();
        const member = await decide(id, 'approve', memberKey);
        expect([member.statusCode, member.json().error.code]).toEqual([403, 'forbidden']);
        const key = await decide(id, 'approve', ownerKey);
        expect([key.statusCode, key.json().error.code]).toEqual([403, 'forbidden']);
        for (const staffKey of Object.values(staff))
          expect((await decide(id, 'approve', staffKey)).statusCode).toBe(401);
        const forged = await app.inject({
          method: 'POST',
          url: `/api/v1/access-requests/${id}/approve`,
          headers: { cookie: `strongroom_session=${owner.a}` },
        });
        expect([forged.statusCode, forged.json().error.code]).toEqual([403, 'csrf_check_failed']);
        expect(await statusOf(id)).toBe('pending');

        const approved = await decide(id, 'approve');
        expect(approved.statusCode).toBe(200);
        const grant = approved.json();
        expect(grant.status).toBe('approved');
        expect(new Date(grant.endsAt).getTime() - new Date(grant.startsAt).getTime()).toBe(8 * 3600_000);
        const again = await decide(id, 'deny');
        expect([again.statusCode, again.json().error.code]).toEqual([409, 'access_request_not_pending']);

        const revoked = await decide(id, 'revoke');
        expect([revoked.statusCode, revoked.json().status]).toEqual([200, 'revoked']);
        const twice = await decide(id, 'revoke');
        expect([twice.statusCode, twice.json().error.code]).toEqual([409, 'access_grant_not_active']);
      });

      it('keeps the terms of a decided request fixed in the database itself, and every request on record', async () => {
        const { id } = (await ask({ access: 'read' })).json();
        const table = sql`control.access_requests`;
        // Even pending, the terms cannot be edited: a request is approved as it was asked.
        await expect(
          sql`update ${table} set access = 'write' where id = ${id}`.execute(testDb.database.db),
        ).rejects.toThrow(/terms of an access request cannot change/);
        expect((await decide(id, 'approve')).statusCode).toBe(200);
        for (const change of [
          sql`update ${table} set project_ids = array[gen_random_uuid()] where id = ${id}`,
          sql`update ${table} set ends_at = ends_at + interval '30 days' where id = ${id}`,
          sql`update ${table} set status = 'pending' where id = ${id}`,
          sql`delete from ${table} where id = ${id}`,
        ]) {
          await expect(change.execute(testDb.database.db)).rejects.toThrow();
        }
        expect(await statusOf(id)).toBe('approved');
      });

      it('expires unanswered requests after four days and grants at their end', async () => {
        const pending = (await ask({})).json();
        const granted = (await ask({ durationMinutes: 60 })).json();
        expect((await decide(granted.id, 'approve')).statusCode).toBe(200);
        nowMs += 61 * 60_000;
        expect(await statusOf(granted.id)).toBe('expired');
        expect((await decide(granted.id, 'revoke')).json().error.code).toBe('access_grant_not_active');
        nowMs += 4 * 86_400_000;
        expect(await statusOf(pending.id)).toBe('expired');
        const late = await decide(pending.id, 'approve');
        expect([late.statusCode, late.json().error.code]).toEqual([409, 'access_request_not_pending']);
      });

      describe('acting under a grant', () => {
        let recordId: string;
        let otherProjectId: string;
        let bProjectId: string;
        const asStaff = (method: string, url: string, key: string, grantId?: string, body?: unknown) =>
          app.inject({
            method: method as 'GET',
            url,
            headers: {
              authorization: `Bearer ${key}`,
              ...(grantId ? { 'x-strongroom-grant': grantId } : {}),
              ...(body ? { 'content-type': 'application/json' } : {}),
            },
            ...(body ? { payload: JSON.stringify(body) } : {}),
          });
        const recordUrl = () => `/api/v1/projects/${projectId}/records/${recordId}`;
        /** A request by `key`, decided by the owner of `tenant` as `decision` (undefined: left pending). */
        const grantFor = async (
          decision: 'approve' | 'deny' | 'revoke' | undefined,
          body: Record<string, unknown> = {},
          tenant: 'a' | 'b' = 'a',
        ) => {
          const { id } = (
            await ask({
              ...(tenant === 'b'
                ? { tenant: 'lockbox-b', scope: { kind: 'projects', projectIds: [bProjectId] } }
                : {}),
              ...body,
            })
          ).json();
          if (decision === 'revoke')
            expect((await decide(id, 'approve', owner[tenant])).statusCode).toBe(200);
          if (decision) expect((await decide(id, decision, owner[tenant])).statusCode).toBe(200);
          return id as string;
        };

        beforeAll(async () => {
          recordId = (
            await callAs(app, 'POST', `/api/v1/projects/${projectId}/records`, owner.a, {
              collection: 'invoices',
              data: { total: 42, canary: 'grant-canary' },
            })
          ).json().id;
          otherProjectId = (
            await callAs(app, 'POST', '/api/v1/projects', owner.a, { name: 'Payroll' })
          ).json().id;
          bProjectId = (await callAs(app, 'POST', '/api/v1/projects', owner.b, { name: 'B data' })).json().id;
        });

        it('opens exactly the approved scope, read only unless write was granted, on the very next request', async () => {
          const grant = await grantFor('approve');
          const read = await asStaff('GET', recordUrl(), staff.support, grant);
          expect(read.statusCode).toBe(200);
          expect(read.json().data.canary).toBe('grant-canary');
          // Outside the scope: the other project is as if absent; tenant-wide and personal routes refuse.
          const other = await asStaff('GET', `/api/v1/projects/${otherProjectId}`, staff.support, grant);
          expect(other.statusCode).toBe(404);
          for (const [method, url] of [
            ['GET', '/api/v1/me'],
            ['POST', '/api/v1/api-keys'],
            ['GET', '/api/v1/projects'],
            ['GET', '/api/v1/users'],
            ['GET', '/api/v1/access-requests'],
            ['POST', `/api/v1/access-requests/${grant}/approve`],
          ] as const) {
            const refused = await asStaff(
              method,
              url,
              staff.support,
              grant,
              method === 'POST' ? { name: 'k', access: 'write' } : undefined,
            );
            expect([refused.statusCode, refused.json().error.code], url).toEqual([
              403,
              'support_grant_route_refused',
            ]);
          }
          // Read grant: no writes.
          const write = await asStaff('POST', `/api/v1/projects/${projectId}/records`, staff.support, grant, {
            collection: 'invoices',
            data: { total: 1 },
          });
          expect([write.statusCode, write.json().error.code]).toEqual([403, 'forbidden']);
          // Revoked: refused from the next request on.
          expect((await decide(grant, 'revoke')).statusCode).toBe(200);
          const after = await asStaff('GET', recordUrl(), staff.support, grant);
          expect([after.statusCode, after.json().error.code, after.json().error.details.status]).toEqual([
            403,
            'support_grant_unusable',
            'revoked',
          ]);
        });

        it("records every action under a grant in the tenant's audit log, with the staff member and the grant id", async () => {
          const grant = await grantFor('approve', { access: 'write' });
          const read = await asStaff('GET', recordUrl(), staff.support, grant);
          const write = await asStaff('POST', `/api/v1/projects/${projectId}/records`, staff.support, grant, {
            collection: 'invoices',
            data: { total: 3 },
          });
          const refused = await asStaff('GET', `/api/v1/projects/${otherProjectId}`, staff.support, grant);
          expect([read.statusCode, write.statusCode, refused.statusCode]).toEqual([200, 201, 404]);
          await decide(grant, 'revoke');
          await core.audit.flush();
          const entries = (await callAs(app, 'GET', '/api/v1/audit?limit=200', owner.a)).json()
            .items as Array<{
            requestId: string;
            actorKind: string;
            grantId: string | null;
            outcome: string;
            action: string;
          }>;
          for (const response of [read, write, refused]) {
            const mine = entries.filter((e) => e.requestId === response.headers['x-request-id']);
            expect(mine, response.headers['x-request-id'] as string).toHaveLength(1);
            expect(mine[0]).toMatchObject({ actorKind: 'staff', grantId: grant });
          }
          expect(entries.find((e) => e.requestId === refused.headers['x-request-id'])?.outcome).toBe('deny');
          // The tenant can ask what the grant did, and its admins got the summary when it was revoked.
          const ofGrant = (await callAs(app, 'GET', `/api/v1/audit?grant=${grant}&limit=200`, owner.a)).json()
            .items;
          expect(ofGrant).toHaveLength(3);
          const summary = outbox(outboxDir).find((text) => text.includes(`audit?grant=${grant}`));
          expect(summary).toContain('owner@a.test');
          expect(summary).toContain('was revoked');
          expect(summary).toMatch(/records\.read, allow: 1/);
          expect(summary).toMatch(/, deny: 1/);
          // None of it is in tenant B's log.
          const bEntries = (await callAs(app, 'GET', '/api/v1/audit?limit=200', owner.b)).json()
            .items as Array<{
            grantId: string | null;
          }>;
          expect(bEntries.some((e) => e.grantId === grant)).toBe(false);
        });

        it('attributes writes under a write grant to a stand-in user that can never sign in', async () => {
          const grant = await grantFor('approve', { access: 'write' });
          const created = await asStaff(
            'POST',
            `/api/v1/projects/${projectId}/records`,
            staff.support,
            grant,
            {
              collection: 'invoices',
              data: { total: 7 },
            },
          );
          expect(created.statusCode).toBe(201);
          const users = (await callAs(app, 'GET', '/api/v1/users', owner.a)).json().items as Array<{
            id: string;
            displayName: string;
            status: string;
          }>;
          const standIn = users.find((u) => u.displayName === 'Strongroom support: support');
          expect(standIn?.status).toBe('disabled');
          expect(created.json().createdBy).toBe(standIn?.id);
          await decide(grant, 'revoke');
        });

        it('denies every staff role without an approved grant of its own, in scope, in this tenant', async () => {
          const grants = {
            pending: await grantFor(undefined),
            denied: await grantFor('deny'),
            revoked: await grantFor('revoke'),
            otherTenant: await grantFor('approve', {}, 'b'),
            outOfScope: await grantFor('approve', {
              scope: { kind: 'projects', projectIds: [otherProjectId] },
            }),
            settingsOnly: await grantFor('approve', { scope: { kind: 'settings' } }),
          };
          const mismatches: string[] = [];
          for (const [role, key] of Object.entries(staff)) {
            const none = await asStaff('GET', recordUrl(), key);
            if (none.statusCode !== 401) mismatches.push(`${role} without a grant: ${none.statusCode}`);
            for (const [state, grantId] of Object.entries(grants)) {
              const res = await asStaff('GET', recordUrl(), key, grantId);
              if (res.statusCode === 200 || res.body.includes('grant-canary'))
                mismatches.push(`${role} ${state}: ${res.statusCode}`);
            }
          }
          expect(mismatches).toEqual([]);
          // The in-scope uses of the last two work for their own holder.
          expect(
            (await asStaff('GET', `/api/v1/projects/${otherProjectId}`, staff.support, grants.outOfScope))
              .statusCode,
          ).toBe(200);
          expect(
            (await asStaff('GET', '/api/v1/settings/security', staff.support, grants.settingsOnly))
              .statusCode,
          ).toBe(200);
          expect(
            (await asStaff('GET', `/api/v1/projects/${bProjectId}`, staff.support, grants.otherTenant))
              .statusCode,
          ).toBe(200);
          // A grant of tenant B opens B only: A's project is not found through it.
          expect(
            (await asStaff('GET', `/api/v1/projects/${projectId}`, staff.support, grants.otherTenant))
              .statusCode,
          ).toBe(404);
          // Tampered ids: not a grant at all.
          for (const id of ['not-a-uuid', '7d3f0c7e-1b7e-4e38-9c1f-6a1f2b3c4d5e', `${grants.pending}x`]) {
            const res = await asStaff('GET', recordUrl(), staff.support, id);
            expect([res.statusCode, res.json().error.code]).toEqual([403, 'support_grant_unusable']);
          }
          for (const id of Object.values(grants)) await decide(id, 'revoke', owner.a).catch(() => undefined);
        });

        it('opens nothing of a suspended or deleted tenant, refuses new requests for it, and audits each attempt', async () => {
          const created = await core.tenants.create({
            slug: 'lockbox-c',
            name: 'Tenant C',
            ownerEmail: 'owner@c.test',
          });
          const tenantC = created.tenant.id;
          const ownerC = (
            await core.identity.setupOwner({ token: created.ownerSetupToken, displayName: 'O', password })
          ).session.token;
          const cProject = (await callAs(app, 'POST', '/api/v1/projects', ownerC, { name: 'C data' })).json()
            .id;
          const cRecord = (
            await callAs(app, 'POST', `/api/v1/projects/${cProject}/records`, ownerC, {
              collection: 'invoices',
              data: { canary: 'suspended-canary' },
            })
          ).json().id;
          const cUrl = `/api/v1/projects/${cProject}/records/${cRecord}`;
          const askC = () =>
            ask({ tenant: 'lockbox-c', scope: { kind: 'projects', projectIds: [cProject] } });
          const approved = (await askC()).json().id as string;
          expect((await decide(approved, 'approve', ownerC)).statusCode).toBe(200);
          const pending = (await askC()).json().id as string;
          expect((await asStaff('GET', cUrl, staff.support, approved)).statusCode).toBe(200);
          const requestsOfC = async () =>
            (
              await sql<{
                n: number;
              }>`select count(*)::int as n from control.access_requests where tenant_id = ${tenantC}`.execute(
                testDb.database.db,
              )
            ).rows[0]?.n;
          const before = await requestsOfC();

          await core.tenants.suspend('lockbox-c');
          const refused: string[] = [];
          for (const [role, key] of Object.entries(staff)) {
            const res = await asStaff('GET', cUrl, key, approved);
            expect(res.statusCode, role).toBe(403);
            expect(res.body).not.toContain('suspended-canary');
            refused.push(res.headers['x-request-id'] as string);
          }
          const holder = await asStaff('GET', cUrl, staff.support, approved);
          expect([holder.statusCode, holder.json().error.code]).toEqual([403, 'tenant_suspended']);
          refused.push(holder.headers['x-request-id'] as string);
          // No new request, and the owners (who cannot sign in) cannot approve the one pending.
          const asked = await askC();
          expect([asked.statusCode, asked.json().error.code]).toEqual([403, 'tenant_suspended']);
          expect(await requestsOfC()).toBe(before);
          expect((await decide(pending, 'approve', ownerC)).json().error.code).toBe('tenant_suspended');
          const { rows: pendingRow } = await sql<{
            status: string;
          }>`select status from control.access_requests where id = ${pending}`.execute(testDb.database.db);
          expect(pendingRow[0]?.status).toBe('pending');

          // Each refused attempt is one denial on the platform chain, as that staff member's.
          await core.audit.flush();
          const { rows } = await sql<{
            request_id: string;
            actor_kind: string;
            outcome: string;
            error_code: string;
          }>`
            select request_id, actor_kind, outcome, error_code from control.audit_log
            where request_id = any(${refused}::text[])`.execute(testDb.database.db);
          expect(rows).toHaveLength(refused.length);
          expect(rows.every((r) => r.actor_kind === 'staff' && r.outcome === 'deny')).toBe(true);
          expect(rows.find((r) => r.request_id === holder.headers['x-request-id'])?.error_code).toBe(
            'tenant_suspended',
          );

          // Resumed: the grant opens again until its own end (suspension does not stop its clock).
          await core.tenants.resume('lockbox-c');
          expect((await asStaff('GET', cUrl, staff.support, approved)).statusCode).toBe(200);
          await core.tenants.delete('lockbox-c', 'lockbox-c');
          const gone = await asStaff('GET', cUrl, staff.support, approved);
          expect([gone.statusCode, gone.json().error.code]).toEqual([404, 'tenant_not_found']);
          expect((await askC()).json().error.code).toBe('tenant_not_found');
          expect(await requestsOfC()).toBe(before);
        });

        it('ends a grant at its end: refused one second after', async () => {
          const grant = await grantFor('approve', { durationMinutes: 1 });
          expect((await asStaff('GET', recordUrl(), staff.support, grant)).statusCode).toBe(200);
          nowMs += 59_000;
          expect((await asStaff('GET', recordUrl(), staff.support, grant)).statusCode).toBe(200);
          nowMs += 2_000;
          const late = await asStaff('GET', recordUrl(), staff.support, grant);
          expect([late.statusCode, late.json().error.details.status]).toEqual([403, 'expired']);
          // Its summary goes out once, whoever asks.
          expect(await core.support.sendEndedGrantSummaries()).toBeGreaterThanOrEqual(1);
          expect(await core.support.sendEndedGrantSummaries()).toBe(0);
          const summaries = outbox(outboxDir).filter((text) => text.includes(`audit?grant=${grant}`));
          expect(summaries).toHaveLength(1);
          expect(summaries[0]).toContain('ended at');
          expect(summaries[0]).toMatch(/records\.read, allow: 2/);
        });
      });

      it('refuses break-glass access while it is off (the default)', async () => {
        const refused = await callAs(app, 'POST', '/api/v1/ops/break-glass', staff.operator, {
          tenant: 'lockbox-a',
          reason: 'Production incident, customer unreachable',
          scope: { kind: 'settings' },
        });
        expect([refused.statusCode, refused.json().error.code]).toEqual([403, 'break_glass_disabled']);
      });

      it('refuses developers, staff without the permission, and malformed requests, storing nothing', async () => {
        const before = (await callAs(app, 'GET', '/api/v1/access-requests', owner.a)).json().items.length;
        const developer = await ask({}, staff.developer);
        expect([developer.statusCode, developer.json().error.code]).toEqual([403, 'forbidden']);
        const security = await ask({}, staff.security);
        expect([security.statusCode, security.json().error.code]).toEqual([403, 'forbidden']);
        const tooMany = Array.from(
          { length: 21 },
          (_, i) => `7d3f0c7e-1b7e-4e38-9c1f-6a1f2b3c4d${String(i).padStart(2, '0')}`,
        );
        for (const body of [
          { reason: 'short' },
          { reason: 'x'.repeat(2001) },
          { reason: 'a reason with a \u0000 nul in it' },
          { scope: { kind: 'everything' } },
          { scope: { kind: 'projects', projectIds: [] } },
          { scope: { kind: 'projects', projectIds: ['../../etc'] } },
          { scope: { kind: 'projects', projectIds: tooMany } },
          { scope: { kind: 'settings', projectIds: [projectId] } },
          { durationMinutes: 24 * 60 + 1 },
          { durationMinutes: 1e9 },
          { durationMinutes: 0.5 },
          { ticket: '' },
        ]) {
          const refused = await ask(body);
          expect([refused.statusCode, refused.json().error.code], JSON.stringify(body)).toEqual([
            400,
            'invalid_access_request',
          ]);
        }
        expect((await ask({ access: 'admin' })).statusCode).toBe(400);
        expect((await ask({ tenant: 'no-such-tenant' })).statusCode).toBe(404);
        expect((await callAs(app, 'GET', '/api/v1/access-requests/not-a-uuid', owner.a)).statusCode).toBe(
          404,
        );
        expect((await callAs(app, 'GET', '/api/v1/access-requests', owner.a)).json().items).toHaveLength(
          before,
        );
      });
    },
  );
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`break-glass access, enabled, on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    let outboxDir: string;
    let owner: string;
    let requester: string;
    let second: string;
    let developer: string;
    const body = {
      tenant: 'glass-a',
      reason: 'Data corruption incident, customer unreachable at night',
      scope: { kind: 'settings' },
      access: 'write',
    };

    beforeAll(async () => {
      ({ core, testDb, outboxDir } = await openTestCore(kind, {
        supportAccess: { maxGrantMs: 24 * 3600_000, pendingMs: 4 * 86_400_000, breakGlass: true },
      }));
      app = await buildTestApp(core);
      const created = await core.tenants.create({
        slug: 'glass-a',
        name: 'Glass',
        ownerEmail: 'owner@glass.test',
      });
      owner = (await core.identity.setupOwner({ token: created.ownerSetupToken, displayName: 'O', password }))
        .session.token;
      requester = (await enrolStaff(core, { email: 'sup@ops.test', displayName: 'Sup', role: 'support' }))
        .apiKey;
      second = (await enrolStaff(core, { email: 'sec@ops.test', displayName: 'Sec', role: 'security' }))
        .apiKey;
      developer = (await enrolStaff(core, { email: 'dev@ops.test', displayName: 'Dev', role: 'developer' }))
        .apiKey;
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it('needs a second staff member, lasts at most an hour, and tells the tenant at once, twice', async () => {
      const tooLong = await callAs(app, 'POST', '/api/v1/ops/break-glass', requester, {
        ...body,
        durationMinutes: 61,
      });
      expect([tooLong.statusCode, tooLong.json().error.code]).toEqual([400, 'invalid_access_request']);
      const asked = await callAs(app, 'POST', '/api/v1/ops/break-glass', requester, body);
      expect(asked.statusCode).toBe(201);
      const { id } = asked.json();
      expect(asked.json()).toMatchObject({ kind: 'break_glass', status: 'pending', durationMinutes: 60 });
      const mails = () =>
        readdirSync(outboxDir)
          .map((file) => readFileSync(join(outboxDir, file), 'utf8'))
          .filter((text) => text.includes(id));
      expect(mails().filter((text) => text.includes('EMERGENCY ACCESS REQUESTED'))).toHaveLength(1);

      // Not open yet: the requester cannot use it, nor confirm it; a developer cannot confirm it.
      const early = await app.inject({
        method: 'GET',
        url: '/api/v1/settings/security',
        headers: { authorization: `Bearer ${requester}`, 'x-strongroom-grant': id },
      });
      expect([early.statusCode, early.json().error.details.status]).toEqual([403, 'pending']);
      const self = await callAs(app, 'POST', `/api/v1/ops/break-glass/${id}/confirm`, requester);
      expect(self.statusCode).toBe(403);
      const dev = await callAs(app, 'POST', `/api/v1/ops/break-glass/${id}/confirm`, developer);
      expect([dev.statusCode, dev.json().error.code]).toEqual([403, 'forbidden']);

      const confirmed = await callAs(app, 'POST', `/api/v1/ops/break-glass/${id}/confirm`, second);
      expect(confirmed.statusCode).toBe(200);
      const grant = confirmed.json();
      expect(grant.status).toBe('approved');
      expect(grant.confirmedBy).not.toBeNull();
      expect(new Date(grant.endsAt).getTime() - new Date(grant.startsAt).getTime()).toBe(3600_000);
      expect(mails().filter((text) => text.includes('EMERGENCY ACCESS IS OPEN'))).toHaveLength(1);

      const open = await app.inject({
        method: 'GET',
        url: '/api/v1/settings/security',
        headers: { authorization: `Bearer ${requester}`, 'x-strongroom-grant': id },
      });
      expect(open.statusCode).toBe(200);
      // The tenant sees it and ends it.
      const listed = (await callAs(app, 'GET', '/api/v1/access-requests', owner)).json().items;
      expect(listed.map((r: { id: string; kind: string }) => [r.id, r.kind])).toContainEqual([
        id,
        'break_glass',
      ]);
      expect((await callAs(app, 'POST', `/api/v1/access-requests/${id}/revoke`, owner)).statusCode).toBe(200);
      const after = await app.inject({
        method: 'GET',
        url: '/api/v1/settings/security',
        headers: { authorization: `Bearer ${requester}`, 'x-strongroom-grant': id },
      });
      expect(after.statusCode).toBe(403);
      // Confirming twice: refused.
      const twice = await callAs(app, 'POST', `/api/v1/ops/break-glass/${id}/confirm`, second);
      expect(twice.statusCode).toBe(409);
    });

    it('never lets the requester be the second person, and never opens a consent request through this door', async () => {
      const { id } = (await callAs(app, 'POST', '/api/v1/ops/break-glass', second, body)).json();
      const self = await callAs(app, 'POST', `/api/v1/ops/break-glass/${id}/confirm`, second);
      expect([self.statusCode, self.json().error.code]).toEqual([403, 'break_glass_second_person_required']);
      const consent = (
        await callAs(app, 'POST', '/api/v1/ops/access-requests', requester, { ...body, access: 'read' })
      ).json();
      const through = await callAs(app, 'POST', `/api/v1/ops/break-glass/${consent.id}/confirm`, second);
      expect(through.statusCode).toBe(404);
      expect((await callAs(app, 'GET', `/api/v1/access-requests/${consent.id}`, owner)).json().status).toBe(
        'pending',
      );
    });

    it('opens no emergency access to a suspended tenant: neither asked for nor confirmed', async () => {
      const { id } = (await callAs(app, 'POST', '/api/v1/ops/break-glass', requester, body)).json();
      await core.tenants.suspend('glass-a');
      try {
        const asked = await callAs(app, 'POST', '/api/v1/ops/break-glass', requester, body);
        expect([asked.statusCode, asked.json().error.code]).toEqual([403, 'tenant_suspended']);
        const confirmed = await callAs(app, 'POST', `/api/v1/ops/break-glass/${id}/confirm`, second);
        expect([confirmed.statusCode, confirmed.json().error.code]).toEqual([403, 'tenant_suspended']);
      } finally {
        await core.tenants.resume('glass-a');
      }
      // Still waiting for its second person: nothing was decided while the tenant was suspended.
      expect((await callAs(app, 'GET', `/api/v1/access-requests/${id}`, owner)).json().status).toBe(
        'pending',
      );
    });
  });
}
