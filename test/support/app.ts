import { randomUUID } from 'node:crypto';
import { type App, buildApp } from '../../src/http/app.ts';
import { appServices, type Core } from '../../src/main/compose.ts';

/** The HTTP app over a test core, without a socket (use `app.inject`), always ready, never draining. */
export function buildTestApp(core: Core): Promise<App> {
  return buildApp(
    { ...appServices(core), readinessChecks: {}, isDraining: () => false },
    { bodyLimitBytes: 16_384 },
  );
}

/** One request with a bearer credential (and a JSON body when given), through `app.inject`. */
export function callAs(app: App, method: string, url: string, token: string, body?: unknown) {
  return app.inject({
    method: method as 'GET',
    url,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { payload: JSON.stringify(body) } : {}),
  });
}

/**
 * A member of the owner's tenant who may only view `projectId`, and a write-scoped API key of theirs
 * (its rights are still only a viewer's): the usual "reads but cannot change" caller.
 */
export async function projectViewerKey(core: Core, ownerToken: string, projectId: string): Promise<string> {
  const principal = (await core.identity.authenticate(ownerToken))!.principal;
  const viewerId = randomUUID();
  await core.withTenant(principal.tenantId, (scope) =>
    scope.db
      .insertInto('users')
      .values({
        id: viewerId,
        email: `viewer-${viewerId.slice(0, 8)}@viewers.test`,
        display_name: 'V',
        status: 'active',
        role: 'member',
        password_hash: null,
      })
      .execute(),
  );
  await core.projects.putMember(principal, projectId, viewerId, 'viewer');
  const key = await core.identity.createApiKey(
    { ...principal, userId: viewerId, role: 'member' },
    { name: 'viewer key', access: 'write' },
  );
  return key.secret;
}
