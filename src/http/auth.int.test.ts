import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { enrolStaff } from '../../test/support/staff.ts';
import type { Core } from '../main/compose.ts';
import type { App } from './app.ts';

const password = 'the owner picks a long passphrase';
const json = { 'content-type': 'application/json' };

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`sign-in over HTTP on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    let setupToken: string;

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      app = await buildTestApp(core);
      setupToken = (
        await core.tenants.create({ slug: 'initech', name: 'Initech', ownerEmail: 'bill@initech.test' })
      ).ownerSetupToken;
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    const login = (body: Record<string, unknown>) =>
      app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: json, payload: body });

    it('sets up the owner and signs them in with a hardened cookie', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/auth/setup',
        headers: json,
        payload: { token: setupToken, displayName: 'Bill', password },
      });
      expect(res.statusCode).toBe(201);
      expect(res.json().user).toMatchObject({ email: 'bill@initech.test', role: 'owner' });
      const cookie = String(res.headers['set-cookie']);
      expect(cookie).toMatch(
        /^strongroom_session=srt_[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; Secure; SameSite=Strict$/,
      );
    });

    it('serves /me to a bearer token and to the cookie', async () => {
      const { session } = (await login({ tenant: 'initech', email: 'bill@initech.test', password })).json();
      const viaBearer = await app.inject({
        method: 'GET',
        url: '/api/v1/me',
        headers: { authorization: `Bearer ${session.token}` },
      });
      expect(viaBearer.statusCode).toBe(200);
      expect(viaBearer.json().user.email).toBe('bill@initech.test');
      const viaCookie = await app.inject({
        method: 'GET',
        url: '/api/v1/me',
        headers: { cookie: `strongroom_session=${session.token}` },
      });
      expect(viaCookie.statusCode).toBe(200);
      const viaQuery = await app.inject({ method: 'GET', url: `/api/v1/me?token=${session.token}` });
      expect(viaQuery.statusCode).toBe(401);
    });

    it('answers a wrong password, an unknown email and an unknown tenant identically', async () => {
      const answers = await Promise.all([
        login({ tenant: 'initech', email: 'bill@initech.test', password: 'not the right passphrase' }),
        login({ tenant: 'initech', email: 'peter@initech.test', password }),
        login({ tenant: 'nowhere', email: 'bill@initech.test', password }),
      ]);
      for (const res of answers) {
        expect(res.statusCode).toBe(401);
        const { requestId: _id, ...error } = res.json().error;
        expect(error).toEqual({
          code: 'invalid_credentials',
          message: 'The tenant, email or password is wrong, or the account cannot sign in.',
        });
      }
    });

    it('throttles repeated failures with 429 and Retry-After', async () => {
      const target = {
        tenant: 'initech',
        email: 'milton@initech.test',
        password: 'not even an account here',
      };
      for (let i = 0; i < 5; i++) expect((await login(target)).statusCode).toBe(401);
      const throttled = await login(target);
      expect(throttled.statusCode).toBe(429);
      expect(throttled.json().error.code).toBe('login_throttled');
      expect(Number(throttled.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    });

    it('rejects extra fields instead of ignoring them (no mass assignment)', async () => {
      const res = await login({ tenant: 'initech', email: 'bill@initech.test', password, role: 'owner' });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('invalid_request');
      const proto = await app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        headers: json,
        payload: '{"tenant":"initech","email":"bill@initech.test","password":"x","__proto__":{"admin":true}}',
      });
      expect(proto.statusCode).toBe(400);
    });

    it('requires the CSRF header on cookie-authenticated writes, not on bearer ones', async () => {
      const { session } = (await login({ tenant: 'initech', email: 'bill@initech.test', password })).json();
      const cookie = `strongroom_session=${session.token}`;
      const forged = await app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { cookie } });
      expect(forged.statusCode).toBe(403);
      expect(forged.json().error.code).toBe('csrf_check_failed');
      const real = await app.inject({
        method: 'POST',
        url: '/api/v1/auth/logout',
        headers: { cookie, 'x-strongroom-csrf': '1' },
      });
      expect(real.statusCode).toBe(204);
      expect(String(real.headers['set-cookie'])).toContain('strongroom_session=; Path=/; Max-Age=0');
      const after = await app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie } });
      expect(after.statusCode).toBe(401);
    });

    it('ends every session with logout-everywhere', async () => {
      const a = (await login({ tenant: 'initech', email: 'bill@initech.test', password })).json().session
        .token;
      const b = (await login({ tenant: 'initech', email: 'bill@initech.test', password })).json().session
        .token;
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/auth/logout-everywhere',
        headers: { authorization: `Bearer ${a}` },
      });
      expect(res.statusCode).toBe(200);
      expect(res.json().ended).toBeGreaterThanOrEqual(2);
      for (const token of [a, b]) {
        const me = await app.inject({
          method: 'GET',
          url: '/api/v1/me',
          headers: { authorization: `Bearer ${token}` },
        });
        expect(me.statusCode).toBe(401);
      }
    });

    it('does not let a staff key into the tenant scope, nor a session into the operator scope', async () => {
      const staffKey = (
        await enrolStaff(core, { email: 'root@platform.test', displayName: 'Root', role: 'operator' })
      ).apiKey;
      const me = await app.inject({
        method: 'GET',
        url: '/api/v1/me',
        headers: { authorization: `Bearer ${staffKey}` },
      });
      expect(me.statusCode).toBe(401);
      const { session } = (await login({ tenant: 'initech', email: 'bill@initech.test', password })).json();
      const ops = await app.inject({
        method: 'GET',
        url: '/api/v1/ops/tenants',
        headers: { authorization: `Bearer ${session.token}` },
      });
      expect(ops.statusCode).toBe(401);
    });
  });
}
