import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { enrolStaff } from '../../test/support/staff.ts';
import { hashPassword } from '../crypto/password.ts';
import { hashToken } from '../crypto/tokens.ts';
import type { Core } from '../main/compose.ts';
import { type AccountRole, type Action, decide, type ProjectRole } from '../modules/access/policy.ts';
import { newId } from '../platform/ids.ts';
import type { App } from './app.ts';

/** Each tenant-scope route and the policy action it performs; the matrix below is derived from it. */
let invited = 0;
const routes: Array<{
  method: string;
  path: string;
  action: Action | 'session';
  body?: () => unknown;
  /** For routes on the caller's own things: what any signed-in caller gets. */
  own?: number[];
  /** What an allowed caller gets, when not plain success. */
  allowed?: number[];
  headers?: Record<string, string>;
}> = [
  { method: 'GET', path: '/api/v1/me', action: 'session' },
  { method: 'GET', path: '/api/v1/api-keys', action: 'session' },
  {
    method: 'POST',
    path: '/api/v1/api-keys',
    action: 'session',
    body: () => ({ name: 'matrix key', access: 'read' }),
    own: [201],
  },
  // A key id that is nobody's: not found for everyone, like another user's key.
  {
    method: 'DELETE',
    path: '/api/v1/api-keys/{keyId}',
    action: 'session',
    own: [404],
  },
  { method: 'POST', path: '/api/v1/me/mfa', action: 'session', own: [200] },
  // A wrong code, after the enrolment above: the route is reachable, the code refused.
  {
    method: 'POST',
    path: '/api/v1/me/mfa/confirm',
    action: 'session',
    body: () => ({ code: 'abcdef' }),
    own: [400],
  },
  // No second factor to replace codes for: the route is reachable, the request refused.
  {
    method: 'POST',
    path: '/api/v1/me/mfa/recovery-codes',
    action: 'session',
    body: () => ({ code: '123456' }),
    own: [409],
  },
  { method: 'POST', path: '/api/v1/auth/logout', action: 'session' },
  { method: 'POST', path: '/api/v1/auth/logout-everywhere', action: 'session' },
  { method: 'GET', path: '/api/v1/settings/security', action: 'tenant.settings.read' },
  {
    method: 'PUT',
    path: '/api/v1/settings/security',
    action: 'tenant.settings.update',
    body: () => ({ mfaRequired: false }),
  },
  { method: 'GET', path: '/api/v1/users', action: 'users.list' },
  { method: 'GET', path: '/api/v1/usage', action: 'usage.read' },
  // No backup locations in this suite: an allowed caller reaches the restore and is refused there.
  {
    method: 'POST',
    path: '/api/v1/restores',
    action: 'tenant.restore',
    body: () => ({ at: new Date().toISOString(), intoSlug: 'matrix-restore' }),
    allowed: [400],
  },
  { method: 'GET', path: '/api/v1/restores', action: 'tenant.restore' },
  // An id that is no job's: allowed callers get 404, the rest are refused before the lookup.
  { method: 'GET', path: '/api/v1/restores/{jobId}', action: 'tenant.restore', allowed: [404] },
  { method: 'GET', path: '/api/v1/access-requests', action: 'access_requests.read' },
  // An id that is no request's: allowed callers get 404, the rest are refused before the lookup.
  { method: 'GET', path: '/api/v1/access-requests/{id}', action: 'access_requests.read', allowed: [404] },
  ...(['approve', 'deny', 'revoke'] as const).map((verb) => ({
    method: 'POST',
    path: `/api/v1/access-requests/{id}/${verb}`,
    action: 'access_requests.decide' as const,
    allowed: [404],
  })),
  {
    method: 'POST',
    path: '/api/v1/users/invitations',
    action: 'users.invite',
    body: () => ({ email: `invitee${++invited}@a.test`, role: 'member' }),
  },
  // Making the target (a member) a member again: allowed, changes nothing.
  {
    method: 'PATCH',
    path: '/api/v1/users/{userId}',
    action: 'users.manage',
    body: () => ({ role: 'member' }),
  },
  // The target has no second factor to reset: reachable, refused as such.
  { method: 'DELETE', path: '/api/v1/users/{userId}/mfa', action: 'users.manage', allowed: [409] },
  {
    method: 'POST',
    path: '/api/v1/projects',
    action: 'projects.create',
    body: () => ({ name: 'made in the matrix' }),
  },
  { method: 'GET', path: '/api/v1/projects', action: 'projects.list' },
  { method: 'GET', path: '/api/v1/projects/{projectId}', action: 'project.read' },
  {
    method: 'PATCH',
    path: '/api/v1/projects/{projectId}',
    action: 'project.update',
    body: () => ({ name: 'renamed' }),
  },
  { method: 'DELETE', path: '/api/v1/projects/{projectId}', action: 'project.delete' },
  { method: 'GET', path: '/api/v1/projects/{projectId}/members', action: 'project.members.read' },
  { method: 'GET', path: '/api/v1/projects/{projectId}/members/{userId}', action: 'project.members.read' },
  {
    method: 'PUT',
    path: '/api/v1/projects/{projectId}/members/{userId}',
    action: 'project.members.manage',
    body: () => ({ role: 'viewer' }),
  },
  {
    method: 'DELETE',
    path: '/api/v1/projects/{projectId}/members/{userId}',
    action: 'project.members.manage',
  },
  {
    method: 'POST',
    path: '/api/v1/projects/{projectId}/records',
    action: 'records.write',
    body: () => ({ collection: 'matrix', data: { made: 'in the matrix' } }),
  },
  { method: 'GET', path: '/api/v1/projects/{projectId}/records', action: 'records.read' },
  // Each call gets a fresh record of the owner's (see {recordId} below).
  { method: 'GET', path: '/api/v1/projects/{projectId}/records/{recordId}', action: 'records.read' },
  {
    method: 'PUT',
    path: '/api/v1/projects/{projectId}/records/{recordId}',
    action: 'records.write',
    body: () => ({ data: { replaced: true } }),
    headers: { 'if-match': '*' },
  },
  {
    method: 'PATCH',
    path: '/api/v1/projects/{projectId}/records/{recordId}',
    action: 'records.write',
    body: () => ({ data: { patched: true } }),
    headers: { 'if-match': '*' },
  },
  {
    method: 'DELETE',
    path: '/api/v1/projects/{projectId}/records/{recordId}',
    action: 'records.write',
    headers: { 'if-match': '*' },
  },
  // Uploads take any body; the matrix sends a small JSON one.
  {
    method: 'PUT',
    path: '/api/v1/projects/{projectId}/attachments',
    action: 'attachments.write',
    body: () => ({ file: 'made in the matrix' }),
  },
  { method: 'GET', path: '/api/v1/projects/{projectId}/attachments', action: 'attachments.read' },
  // Each call gets a fresh attachment of the owner's (see {attachmentId} below).
  {
    method: 'GET',
    path: '/api/v1/projects/{projectId}/attachments/{attachmentId}',
    action: 'attachments.read',
  },
  {
    method: 'GET',
    path: '/api/v1/projects/{projectId}/attachments/{attachmentId}/metadata',
    action: 'attachments.read',
  },
  {
    method: 'PUT',
    path: '/api/v1/projects/{projectId}/attachments/{attachmentId}',
    action: 'attachments.write',
    body: () => ({ file: 'replaced in the matrix' }),
    headers: { 'if-match': '*' },
  },
  {
    method: 'DELETE',
    path: '/api/v1/projects/{projectId}/attachments/{attachmentId}',
    action: 'attachments.write',
    headers: { 'if-match': '*' },
  },
  // The matrix collection has a policy from beforeAll, so If-Match * always matches.
  {
    method: 'GET',
    path: '/api/v1/projects/{projectId}/collections/{collection}/policy',
    action: 'records.read',
  },
  {
    method: 'GET',
    path: '/api/v1/projects/{projectId}/collections/{collection}/policy/versions',
    action: 'records.read',
  },
  {
    method: 'PUT',
    path: '/api/v1/projects/{projectId}/collections/{collection}/policy',
    action: 'project.update',
    body: () => ({ sensitive: ['secret'], personal: ['email'] }),
    headers: { 'if-match': '*' },
  },
  { method: 'GET', path: '/api/v1/audit', action: 'audit.read' },
  { method: 'GET', path: '/api/v1/audit/export', action: 'audit.read' },
  { method: 'GET', path: '/api/v1/audit/verify', action: 'audit.read' },
];
const publicRoutes = [
  'POST /api/v1/auth/setup',
  'POST /api/v1/auth/login',
  'POST /api/v1/auth/accept-invitation',
];

const nobodysKeyId = '0d9c2a8e-3f4b-4c4d-9e8f-1a2b3c4d5e6f';
const statusOf = { allow: [200, 201, 204], forbidden: [403], not_found: [404] } as const;
const password = 'matrix users share one long password';

interface Actor {
  name: string;
  email?: string;
  token: string | undefined;
  accountRole?: AccountRole;
  projectRole?: ProjectRole;
  /** An API key of the owner's, with this access. */
  keyAccess?: 'read' | 'write';
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(
    `projects and permissions over HTTP on ${kind.name}${kind.skipReason}`,
    () => {
      let core: Core;
      let testDb: TestDatabase;
      let app: App;
      const tenantA = { id: '', projectId: '', targetUserId: '', recordId: '', attachmentId: '' };
      const actors: Actor[] = [];
      let outsider: string; // owner of tenant B

      async function addUser(
        tenantId: string,
        email: string,
        role: AccountRole,
        passwordHash: string,
      ): Promise<string> {
        const id = newId();
        await core.withTenant(tenantId, (scope) =>
          scope.db
            .insertInto('users')
            .values({ id, email, display_name: email, status: 'active', role, password_hash: passwordHash })
            .execute(),
        );
        return id;
      }
      async function signIn(tenant: string, email: string): Promise<string> {
        return (await core.identity.login({ tenant, email, password })).session.token;
      }
      const send = (
        method: string,
        url: string,
        token: string | undefined,
        body?: unknown,
        headers: Record<string, string> = {},
      ) =>
        app.inject({
          method: method as 'GET',
          url,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(body ? { 'content-type': 'application/json' } : {}),
            ...headers,
          },
          ...(body ? { payload: JSON.stringify(body) } : {}),
        });

      beforeAll(async () => {
        ({ core, testDb } = await openTestCore(kind));
        app = await buildTestApp(core);
        const passwordHash = await hashPassword(password);
        tenantA.id = (
          await core.tenants.create({ slug: 'tenant-a', name: 'A', ownerEmail: 'owner@a.test' })
        ).tenant.id;
        const tenantB = (
          await core.tenants.create({ slug: 'tenant-b', name: 'B', ownerEmail: 'owner@b.test' })
        ).tenant.id;
        await addUser(tenantA.id, 'owner@a.test', 'owner', passwordHash);
        await addUser(tenantB, 'owner@b.test', 'owner', passwordHash);
        const ids: Record<string, string> = {};
        for (const [email, role] of [
          ['admin@a.test', 'admin'],
          ['member@a.test', 'member'],
          ['viewer@a.test', 'member'],
          ['contributor@a.test', 'member'],
          ['padmin@a.test', 'member'],
          ['target@a.test', 'member'],
        ] as const) {
          ids[email] = await addUser(tenantA.id, email, role, passwordHash);
        }
        tenantA.targetUserId = ids['target@a.test']!;
        const ownerToken = await signIn('tenant-a', 'owner@a.test');
        const created = await send('POST', '/api/v1/projects', ownerToken, { name: 'CANARY-A-project-7f3e' });
        expect(created.statusCode).toBe(201);
        tenantA.projectId = created.json().id;
        tenantA.recordId = (
          await send('POST', `/api/v1/projects/${tenantA.projectId}/records`, ownerToken, {
            collection: 'canary',
            data: { note: 'CANARY-A-record' },
          })
        ).json().id;
        tenantA.attachmentId = (
          await send('PUT', `/api/v1/projects/${tenantA.projectId}/attachments`, ownerToken, {
            note: 'CANARY-A-attachment',
          })
        ).json().id;
        const policy = await send(
          'PUT',
          `/api/v1/projects/${tenantA.projectId}/collections/matrix/policy`,
          ownerToken,
          { sensitive: ['secret'], personal: ['CANARY_A_personal'] },
        );
        expect(policy.statusCode).toBe(200);
        for (const [email, role] of [
          ['viewer@a.test', 'viewer'],
          ['contributor@a.test', 'contributor'],
          ['padmin@a.test', 'project_admin'],
          ['target@a.test', 'viewer'],
        ] as const) {
          const put = await send(
            'PUT',
            `/api/v1/projects/${tenantA.projectId}/members/${ids[email]}`,
            ownerToken,
            { role },
          );
          expect(put.statusCode).toBe(200);
        }
        for (const [name, email, accountRole, projectRole] of [
          ['owner', 'owner@a.test', 'owner', undefined],
          ['admin', 'admin@a.test', 'admin', undefined],
          ['member without project', 'member@a.test', 'member', undefined],
          ['viewer', 'viewer@a.test', 'member', 'viewer'],
          ['contributor', 'contributor@a.test', 'member', 'contributor'],
          ['project admin', 'padmin@a.test', 'member', 'project_admin'],
        ] as const) {
          actors.push({ name, email, accountRole, projectRole, token: await signIn('tenant-a', email) });
        }
        for (const access of ['read', 'write'] as const) {
          const owner = actors.find((a) => a.name === 'owner')!.token;
          const key = (
            await send('POST', '/api/v1/api-keys', owner, { name: `${access} key`, access })
          ).json().secret;
          actors.push({ name: `owner's ${access} key`, token: key, accountRole: 'owner', keyAccess: access });
        }
        actors.push({ name: 'anonymous', token: undefined });
        // A revoked key (used once first, so it was in the principal cache) and an expired session.
        {
          const owner = actors.find((a) => a.name === 'owner')!.token;
          const created = (
            await send('POST', '/api/v1/api-keys', owner, { name: 'soon revoked', access: 'write' })
          ).json();
          expect((await send('GET', '/api/v1/me', created.secret)).statusCode).toBe(200);
          expect((await send('DELETE', `/api/v1/api-keys/${created.key.id}`, owner)).statusCode).toBe(204);
          actors.push({ name: 'revoked key', token: created.secret });
          const expired = await signIn('tenant-a', 'owner@a.test');
          await core.withTenant(tenantA.id, (scope) =>
            scope.db
              .updateTable('sessions')
              .set({ idle_expires_at: sql`now() - interval '1 second'` })
              .where('token_hash', '=', hashToken(expired))
              .execute(),
          );
          actors.push({ name: 'expired session', token: expired });
        }
        // Staff of every role: a staff credential opens no tenant data by itself.
        for (const role of ['operator', 'support', 'security', 'developer'] as const) {
          const { apiKey } = await enrolStaff(core, {
            email: `${role}@platform.test`,
            displayName: role,
            role,
          });
          actors.push({ name: `staff ${role}`, token: apiKey });
        }
        outsider = await signIn('tenant-b', 'owner@b.test');
      });
      afterAll(async () => {
        await app?.close();
        await testDb?.close();
      });

      it('has a matrix row for every tenant-scope route in the OpenAPI document', async () => {
        const doc = (await send('GET', '/api/v1/openapi.json', undefined)).json();
        const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
          .filter(([path]) => path.startsWith('/api/v1/') && !path.startsWith('/api/v1/ops/'))
          .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
          .filter((route) => !publicRoutes.includes(route))
          .sort();
        expect(documented).toEqual(routes.map((r) => `${r.method} ${r.path}`).sort());
      });

      it('answers every route for every principal exactly as the policy says', async () => {
        const mismatches: string[] = [];
        // Deletes run on throwaway projects; the session-ending routes run last, each on a fresh session.
        const endsSessions = (r: (typeof routes)[number]) => r.action === 'session' && r.method === 'POST';
        const ordered = [...routes.filter((r) => !endsSessions(r)), ...routes.filter(endsSessions)];
        const audited: Array<{ requestId: string; status: number; actor: string; key: boolean }> = [];
        for (const route of ordered) {
          for (const actor of actors) {
            let projectId = tenantA.projectId;
            let token = actor.token;
            if (route.action === 'project.delete' || route.method === 'DELETE') {
              // A fresh project (with the actor's membership) so a successful delete harms nothing.
              const owner = actors.find((a) => a.name === 'owner')!.token;
              projectId = (await send('POST', '/api/v1/projects', owner, { name: 'throwaway' })).json().id;
              const self = actor.token && (await send('GET', '/api/v1/me', actor.token)).json().user?.id;
              if (actor.projectRole && self)
                await send('PUT', `/api/v1/projects/${projectId}/members/${self}`, owner, {
                  role: actor.projectRole,
                });
              await send('PUT', `/api/v1/projects/${projectId}/members/${tenantA.targetUserId}`, owner, {
                role: 'viewer',
              });
            }
            if (route.action === 'session' && route.method === 'POST' && actor.email) {
              const email = `${actor.name === 'owner' ? 'owner' : actor.name === 'admin' ? 'admin' : actor.name === 'member without project' ? 'member' : actor.name === 'viewer' ? 'viewer' : actor.name === 'contributor' ? 'contributor' : 'padmin'}@a.test`;
              token = await signIn('tenant-a', email); // logging out must not end the actor's main session
            }
            let recordId = '';
            if (route.path.includes('{recordId}')) {
              const owner = actors.find((a) => a.name === 'owner')!.token;
              recordId = (
                await send('POST', `/api/v1/projects/${projectId}/records`, owner, {
                  collection: 'matrix',
                  data: {},
                })
              ).json().id;
            }
            let attachmentId = '';
            if (route.path.includes('{attachmentId}')) {
              const owner = actors.find((a) => a.name === 'owner')!.token;
              attachmentId = (
                await send('PUT', `/api/v1/projects/${projectId}/attachments`, owner, { file: 'matrix' })
              ).json().id;
            }
            const url = route.path
              .replace('{projectId}', projectId)
              .replace('{userId}', tenantA.targetUserId)
              .replace('{keyId}', nobodysKeyId)
              .replace('{id}', nobodysKeyId)
              .replace('{jobId}', nobodysKeyId)
              .replace('{collection}', 'matrix')
              .replace('{recordId}', recordId)
              .replace('{attachmentId}', attachmentId);
            const res = await send(route.method, url, token, route.body?.(), route.headers);
            audited.push({
              requestId: res.headers['x-request-id'] as string,
              status: res.statusCode,
              actor: actor.name,
              key: actor.keyAccess !== undefined,
            });
            const decision =
              actor.accountRole === undefined || route.action === 'session'
                ? undefined
                : decide(
                    {
                      kind: 'user',
                      tenantId: tenantA.id,
                      userId: 'x',
                      role: actor.accountRole,
                      scope: actor.keyAccess ? { access: actor.keyAccess, projectIds: null } : undefined,
                    },
                    route.action,
                    {
                      tenantId: tenantA.id,
                      isProject: route.path.includes('{projectId}'),
                      projectRole: actor.projectRole,
                    },
                  );
            const expected =
              actor.accountRole === undefined
                ? [401]
                : route.action === 'session'
                  ? actor.keyAccess && route.method === 'POST'
                    ? [403] // minting keys and logging out take a session
                    : (route.own ?? [200, 204])
                  : decision === 'allow' && route.allowed
                    ? route.allowed
                    : statusOf[decision!];
            if (!(expected as readonly number[]).includes(res.statusCode)) {
              mismatches.push(
                `${actor.name}: ${route.method} ${route.path} → ${res.statusCode} ${res.body.slice(0, 100)}, expected ${expected.join('/')}`,
              );
            }
          }
        }
        expect(mismatches).toEqual([]);
        // Exactly one audit entry per request, with the caller and the decision the response showed.
        await core.audit.flush();
        const { rows } = await sql<{ request_id: string; outcome: string; actor_kind: string }>`
          select request_id, outcome, actor_kind from ${sql.id(`t_${tenantA.id.replaceAll('-', '')}`, 'audit_log')}
          union all select request_id, outcome, actor_kind from control.audit_log`.execute(
          testDb.database.db,
        );
        const byRequest = new Map<string, Array<{ outcome: string; actor_kind: string }>>();
        for (const row of rows)
          byRequest.set(row.request_id, [...(byRequest.get(row.request_id) ?? []), row]);
        const wrongEntries = audited.flatMap(({ requestId, status, actor, key }) => {
          const outcome = status < 400 ? 'allow' : [401, 403, 404, 429].includes(status) ? 'deny' : 'error';
          const actorKind = status === 401 ? 'anonymous' : key ? 'api_key' : 'user';
          const found = byRequest.get(requestId) ?? [];
          return found.length === 1 && found[0]?.outcome === outcome && found[0]?.actor_kind === actorKind
            ? []
            : [`${actor} ${requestId} ${status}: ${JSON.stringify(found)}`];
        });
        expect(wrongEntries).toEqual([]);
        // logout-everywhere ended the actors' sessions: sign them in again for the tests below.
        for (const actor of actors) if (actor.email) actor.token = await signIn('tenant-a', actor.email);
      });

      it("gives another tenant's owner a 404 for every one of A's ids, leaks nothing and changes nothing", async () => {
        const snapshot = async () => {
          const owner = actors.find((a) => a.name === 'owner')!.token;
          const projects = (await send('GET', '/api/v1/projects', owner)).body;
          const members = (await send('GET', `/api/v1/projects/${tenantA.projectId}/members`, owner)).body;
          const users = (await send('GET', '/api/v1/users', owner)).body;
          const records = (
            await send('GET', `/api/v1/projects/${tenantA.projectId}/records?limit=200`, owner)
          ).body;
          const attachments = (
            await send('GET', `/api/v1/projects/${tenantA.projectId}/attachments?limit=200`, owner)
          ).body;
          const policy = (
            await send(
              'GET',
              `/api/v1/projects/${tenantA.projectId}/collections/matrix/policy/versions`,
              owner,
            )
          ).body;
          return createHash('sha256')
            .update(projects)
            .update(members)
            .update(users)
            .update(records)
            .update(attachments)
            .update(policy)
            .digest('hex');
        };
        const before = await snapshot();
        for (const route of routes.filter((r) => /\{(projectId|userId)\}/.test(r.path))) {
          const url = route.path
            .replace('{projectId}', tenantA.projectId)
            .replace('{userId}', tenantA.targetUserId)
            .replace('{recordId}', tenantA.recordId)
            .replace('{attachmentId}', tenantA.attachmentId)
            .replace('{collection}', 'matrix');
          const res = await send(route.method, url, outsider, route.body?.(), route.headers);
          expect({ route: `${route.method} ${route.path}`, status: res.statusCode }).toEqual({
            route: `${route.method} ${route.path}`,
            status: 404,
          });
          expect(res.body).not.toMatch(/CANARY[-_]A/);
          expect(res.body).not.toContain(tenantA.projectId);
          expect(res.body).not.toContain(tenantA.recordId);
          expect(res.body).not.toContain(tenantA.attachmentId);
        }
        const listed = await send('GET', '/api/v1/projects', outsider);
        expect(listed.statusCode).toBe(200);
        expect(listed.body).not.toContain('CANARY-A');
        expect(await snapshot()).toBe(before);
      });

      it('refuses mass assignment and malformed ids with a precise 400', async () => {
        const owner = actors.find((a) => a.name === 'owner')!.token;
        for (const [method, url, body] of [
          ['POST', '/api/v1/projects', { name: 'x', tenantId: tenantA.id }],
          ['POST', '/api/v1/projects', { name: 'x', createdBy: tenantA.targetUserId }],
          ['PUT', `/api/v1/projects/${tenantA.projectId}/members/${tenantA.targetUserId}`, { role: 'owner' }],
          ['GET', '/api/v1/projects/not-a-uuid', undefined],
          ['POST', '/api/v1/projects', { name: '' }],
        ] as const) {
          const res = await send(method, url, owner, body);
          expect(res.statusCode, `${method} ${url}`).toBe(400);
          expect(['invalid_request', 'invalid_project_name']).toContain(res.json().error.code);
        }
      });

      it('applies a revoked project role on the very next request', async () => {
        const owner = actors.find((a) => a.name === 'owner')!.token;
        const viewer = actors.find((a) => a.name === 'viewer')!.token;
        const viewerId = (await send('GET', '/api/v1/me', viewer)).json().user.id;
        expect((await send('GET', `/api/v1/projects/${tenantA.projectId}`, viewer)).statusCode).toBe(200);
        expect(
          (await send('DELETE', `/api/v1/projects/${tenantA.projectId}/members/${viewerId}`, owner))
            .statusCode,
        ).toBe(204);
        expect((await send('GET', `/api/v1/projects/${tenantA.projectId}`, viewer)).statusCode).toBe(404);
      });

      it("lists each project with the caller's own role in it, for account owners and admins too", async () => {
        // The owner created the project (project_admin); the account admin sees it without a role.
        for (const [name, role] of [
          ['owner', 'project_admin'],
          ['admin', null],
          ['contributor', 'contributor'],
        ] as const) {
          const token = actors.find((a) => a.name === name)!.token;
          const listed = (await send('GET', '/api/v1/projects', token)).json().items;
          const single = (await send('GET', `/api/v1/projects/${tenantA.projectId}`, token)).json();
          const item = listed.find((p: { id: string }) => p.id === tenantA.projectId);
          expect(item?.role, name).toBe(role);
          expect(single.role, name).toBe(role);
        }
      });
    },
  );
}
