import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, callAs } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { totpFromNow } from '../../test/support/totp.ts';
import { hashPassword } from '../crypto/password.ts';
import type { Core } from '../main/compose.ts';
import type { AccountRole } from '../modules/access/policy.ts';
import { newId } from '../platform/ids.ts';
import type { App } from './app.ts';

const password = 'every account shares this long phrase';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`managing accounts on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    let tenantId: string;
    const ids: Record<string, string> = {};
    const tokens: Record<string, string> = {};

    const call = (method: string, url: string, token: string, body?: unknown) =>
      callAs(app, method, url, token, body);
    const signIn = async (name: string, extra: { totp?: string } = {}) =>
      (await core.identity.login({ tenant: 'monks', email: `${name}@monks.test`, password, ...extra }))
        .session.token;
    const patch = (actor: string, target: string, body: unknown) =>
      call('PATCH', `/api/v1/users/${ids[target]}`, tokens[actor]!, body);

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      app = await buildTestApp(core);
      tenantId = (await core.tenants.create({ slug: 'monks', name: 'Monks', ownerEmail: 'jerry@monks.test' }))
        .tenant.id;
      const passwordHash = await hashPassword(password);
      const accounts: Array<[string, AccountRole, 'active' | 'invited']> = [
        ['jerry', 'owner', 'active'],
        ['george', 'owner', 'active'],
        ['elaine', 'admin', 'active'],
        ['kramer', 'member', 'active'],
        ['newman', 'member', 'active'],
        ['puddy', 'member', 'invited'],
      ];
      for (const [name, role, status] of accounts) {
        ids[name] = newId();
        await core.withTenant(tenantId, (scope) =>
          scope.db
            .insertInto('users')
            .values({
              id: ids[name],
              email: `${name}@monks.test`,
              display_name: name,
              status,
              role,
              password_hash: status === 'active' ? passwordHash : null,
            })
            .execute(),
        );
        if (status === 'active') tokens[name] = await signIn(name);
      }
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it("changes a role, effective on the user's next request", async () => {
      expect((await call('GET', '/api/v1/users', tokens.kramer!)).statusCode).toBe(403);
      const promoted = await patch('elaine', 'kramer', { role: 'admin' });
      expect(promoted.statusCode).toBe(200);
      expect(promoted.json()).toMatchObject({ id: ids.kramer, role: 'admin', status: 'active' });
      expect((await call('GET', '/api/v1/users', tokens.kramer!)).statusCode).toBe(200);
      expect((await patch('elaine', 'kramer', { role: 'member' })).statusCode).toBe(200);
      expect((await call('GET', '/api/v1/users', tokens.kramer!)).statusCode).toBe(403);
    });

    it('lets only owners make an owner or touch one, and nobody change their own account', async () => {
      expect((await patch('elaine', 'kramer', { role: 'owner' })).json().error.code).toBe('forbidden');
      expect((await patch('elaine', 'george', { role: 'member' })).json().error.code).toBe('forbidden');
      expect((await patch('elaine', 'george', { status: 'disabled' })).json().error.code).toBe('forbidden');
      expect((await patch('kramer', 'newman', { role: 'admin' })).json().error.code).toBe('forbidden');
      const self = await patch('elaine', 'elaine', { role: 'member' });
      expect([self.statusCode, self.json().error.code]).toEqual([409, 'own_account']);
      expect((await patch('jerry', 'kramer', { role: 'owner' })).json().role).toBe('owner');
      expect((await patch('jerry', 'kramer', { role: 'member' })).json().role).toBe('member');
    });

    it('keeps an active owner: a stale owner cannot remove the last other one', async () => {
      const jerry = (await core.identity.authenticate(tokens.jerry!))!.principal;
      const george = (await core.identity.authenticate(tokens.george!))!.principal;
      await core.identity.updateUser(george, ids.jerry!, { status: 'disabled' });
      // Jerry's request was authorized before George disabled him; the owner check runs again, locked.
      await expect(core.identity.updateUser(jerry, ids.george!, { role: 'admin' })).rejects.toMatchObject({
        code: 'last_owner',
      });
      await core.identity.updateUser(george, ids.jerry!, { status: 'active' });
      tokens.jerry = await signIn('jerry');
    });

    it('disables a user: every session and key stops at once, and re-enabling brings neither back', async () => {
      const key = (
        await call('POST', '/api/v1/api-keys', tokens.newman!, { name: 'mail route', access: 'read' })
      ).json().secret as string;
      expect((await call('GET', '/api/v1/me', key)).statusCode).toBe(200);
      expect((await call('GET', '/api/v1/me', tokens.newman!)).statusCode).toBe(200);
      expect((await patch('elaine', 'newman', { status: 'disabled' })).json().status).toBe('disabled');
      expect((await call('GET', '/api/v1/me', tokens.newman!)).statusCode).toBe(401);
      expect((await call('GET', '/api/v1/me', key)).statusCode).toBe(401);
      await expect(signIn('newman')).rejects.toMatchObject({ code: 'invalid_credentials' });
      expect((await patch('elaine', 'newman', { status: 'active' })).json().status).toBe('active');
      expect((await call('GET', '/api/v1/me', tokens.newman!)).statusCode).toBe(401);
      expect((await call('GET', '/api/v1/me', key)).statusCode).toBe(401);
      tokens.newman = await signIn('newman');
      expect((await call('GET', '/api/v1/me', tokens.newman)).statusCode).toBe(200);
    });

    it('answers bad input precisely and changes nothing', async () => {
      const before = (await call('GET', '/api/v1/users', tokens.jerry!)).body;
      const cases: Array<[string, unknown, number, string]> = [
        [`/api/v1/users/${ids.kramer}`, {}, 400, 'invalid_request'],
        [`/api/v1/users/${ids.kramer}`, { role: 'admin', tenantId }, 400, 'invalid_request'],
        [`/api/v1/users/${ids.kramer}`, { role: 'superuser' }, 400, 'invalid_request'],
        [`/api/v1/users/${ids.kramer}`, { status: 'invited' }, 400, 'invalid_request'],
        ['/api/v1/users/not-a-uuid', { role: 'admin' }, 400, 'invalid_request'],
        [`/api/v1/users/${newId()}`, { role: 'admin' }, 404, 'not_found'],
        [`/api/v1/users/${ids.puddy}`, { status: 'disabled' }, 409, 'invitation_pending'],
      ];
      for (const [url, body, status, code] of cases) {
        const res = await call('PATCH', url, tokens.jerry!, body);
        expect({ url, body, status: res.statusCode, code: res.json().error?.code }).toEqual({
          url,
          body,
          status,
          code,
        });
      }
      expect((await call('GET', '/api/v1/users', tokens.jerry!)).body).toBe(before);
    });

    it("resets a lost second factor: secret and codes erased, the user's sessions ended", async () => {
      const kramer = (await core.identity.authenticate(tokens.kramer!))!.principal;
      const codeAt = totpFromNow();
      const { secret } = await core.mfa.enroll(kramer, 'kramer@monks.test');
      const { recoveryCodes } = await core.mfa.confirm(kramer, await codeAt(secret, 0));
      await expect(signIn('kramer')).rejects.toMatchObject({ code: 'mfa_required' });
      expect((await call('DELETE', `/api/v1/users/${ids.george}/mfa`, tokens.elaine!)).statusCode).toBe(403);
      const self = await call('DELETE', `/api/v1/users/${ids.elaine}/mfa`, tokens.elaine!);
      expect(self.json().error.code).toBe('own_account');
      expect((await call('DELETE', `/api/v1/users/${ids.kramer}/mfa`, tokens.elaine!)).statusCode).toBe(204);
      expect((await call('GET', '/api/v1/me', tokens.kramer!)).statusCode).toBe(401);
      const again = await call('DELETE', `/api/v1/users/${ids.kramer}/mfa`, tokens.elaine!);
      expect([again.statusCode, again.json().error.code]).toEqual([409, 'mfa_not_enabled']);
      // Password alone signs in again; the old recovery codes are gone with the factor.
      tokens.kramer = await signIn('kramer');
      const stored = await core.withTenant(tenantId, (scope) =>
        scope.db
          .selectFrom('mfa_recovery_codes')
          .select('code_hash')
          .where('user_id', '=', ids.kramer!)
          .execute(),
      );
      expect(stored).toEqual([]);
      expect(recoveryCodes).toHaveLength(10);
    });

    it('replaces recovery codes only with a current code, voiding the old ones', async () => {
      const kramer = (await core.identity.authenticate(tokens.kramer!))!.principal;
      const codeAt = totpFromNow();
      const { secret } = await core.mfa.enroll(kramer, 'kramer@monks.test');
      const old = (await core.mfa.confirm(kramer, await codeAt(secret, 0))).recoveryCodes;
      const wrong = await call('POST', '/api/v1/me/mfa/recovery-codes', tokens.kramer!, { code: '000000' });
      expect([wrong.statusCode, wrong.json().error.code]).toEqual([400, 'invalid_mfa_code']);
      // The confirmation spent this step's code: replaying it is refused too.
      const replay = await call('POST', '/api/v1/me/mfa/recovery-codes', tokens.kramer!, {
        code: await codeAt(secret, 0),
      });
      expect(replay.json().error.code).toBe('invalid_mfa_code');
      const fresh = await call('POST', '/api/v1/me/mfa/recovery-codes', tokens.kramer!, {
        code: await codeAt(secret, 1),
      });
      expect(fresh.statusCode).toBe(200);
      const codes = fresh.json().recoveryCodes as string[];
      expect(codes).toHaveLength(10);
      expect(codes.filter((c) => old.includes(c))).toEqual([]);
      const withCode = (recoveryCode: string) =>
        core.identity.login({ tenant: 'monks', email: 'kramer@monks.test', password, recoveryCode });
      await expect(withCode(old[0]!)).rejects.toMatchObject({ code: 'invalid_credentials' });
      await withCode(codes[0]!);
      const none = await call('POST', '/api/v1/me/mfa/recovery-codes', tokens.elaine!, { code: '123456' });
      expect([none.statusCode, none.json().error.code]).toEqual([409, 'mfa_not_enabled']);
    });

    it('throttles guessing at a second factor from a signed-in session', async () => {
      const guess = () => call('POST', '/api/v1/me/mfa/recovery-codes', tokens.kramer!, { code: '000000' });
      for (let i = 0; i < 5; i++) expect((await guess()).json().error.code).toBe('invalid_mfa_code');
      const refused = await guess();
      expect([refused.statusCode, refused.json().error.code]).toEqual([429, 'login_throttled']);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    });
  });
}
