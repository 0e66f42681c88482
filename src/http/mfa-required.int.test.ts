import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, callAs } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import type { Core } from '../main/compose.ts';
import type { App } from './app.ts';

const password = 'a tenant that insists on two factors';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`a tenant that requires MFA, on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    let owner: string;

    const call = (method: string, url: string, token: string, body?: unknown) =>
      callAs(app, method, url, token, body);

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      app = await buildTestApp(core);
      const { ownerSetupToken } = await core.tenants.create({
        slug: 'fort',
        name: 'Fort',
        ownerEmail: 'keeper@fort.test',
      });
      owner = (await core.identity.setupOwner({ token: ownerSetupToken, displayName: 'Keeper', password }))
        .session.token;
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it('leaves a user without MFA only enrolment until they enrol, and refuses their API keys', async () => {
      const key = (await call('POST', '/api/v1/api-keys', owner, { name: 'k', access: 'read' })).json()
        .secret;
      expect((await call('GET', '/api/v1/settings/security', owner)).json()).toEqual({ mfaRequired: false });
      expect((await call('PUT', '/api/v1/settings/security', owner, { mfaRequired: true })).statusCode).toBe(
        200,
      );

      // The very next request of the owner (who has no MFA yet) is confined to enrolment.
      const blocked = await call('GET', '/api/v1/projects', owner);
      expect(blocked.statusCode).toBe(403);
      expect(blocked.json().error.code).toBe('mfa_enrollment_required');
      expect((await call('GET', '/api/v1/me', owner)).statusCode).toBe(200);
      const refusedKey = await call('GET', '/api/v1/me', key);
      expect(refusedKey.statusCode).toBe(403);
      expect(refusedKey.json().error.code).toBe('mfa_enrollment_required');

      const { secret } = (await call('POST', '/api/v1/me/mfa', owner)).json();
      const confirmed = await call('POST', '/api/v1/me/mfa/confirm', owner, {
        code: await generate({ secret }),
      });
      expect(confirmed.statusCode).toBe(200);
      expect((await call('GET', '/api/v1/projects', owner)).statusCode).toBe(200);
      expect((await call('GET', '/api/v1/me', key)).statusCode).toBe(200);
    });
  });
}
