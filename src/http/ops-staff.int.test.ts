import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, callAs } from '../../test/support/app.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { enrolStaff } from '../../test/support/staff.ts';
import { totpFromNow } from '../../test/support/totp.ts';
import type { Core } from '../main/compose.ts';
import type { App } from './app.ts';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`staff enrolment and MFA on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    const post = (url: string, body: unknown) =>
      app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/json' },
        payload: body as object,
      });
    const tenantsWith = (key: string) => callAs(app, 'GET', '/api/v1/ops/tenants', key);

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      app = await buildTestApp(core);
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it('gives a first key only after the setup token and a confirmed authenticator code', async () => {
      const codeAt = totpFromNow();
      const created = await core.staff.create({
        email: 'babu@platform.test',
        displayName: 'Babu',
        role: 'operator',
      });
      const early = await post('/api/v1/ops/staff/setup/confirm', {
        token: created.setupToken,
        code: '123456',
      });
      expect([early.statusCode, early.json().error.code]).toEqual([409, 'staff_setup_not_started']);
      const begun = await post('/api/v1/ops/staff/setup', { token: created.setupToken });
      expect(begun.statusCode).toBe(200);
      const { secret, otpauthUri } = begun.json();
      expect(otpauthUri).toMatch(/^otpauth:\/\/totp\/Strongroom:babu%40platform\.test/);
      const wrong = await post('/api/v1/ops/staff/setup/confirm', {
        token: created.setupToken,
        code: '000000',
      });
      expect([wrong.statusCode, wrong.json().error.code]).toEqual([400, 'invalid_mfa_code']);
      const confirmed = await post('/api/v1/ops/staff/setup/confirm', {
        token: created.setupToken,
        code: await codeAt(secret, 0),
      });
      expect(confirmed.statusCode).toBe(201);
      const { apiKey } = confirmed.json();
      expect(apiKey).toMatch(/^sro_/);
      expect((await tenantsWith(apiKey)).statusCode).toBe(200);
      // The token is spent: it neither restarts enrolment nor yields another key.
      for (const [url, body] of [
        ['/api/v1/ops/staff/setup', { token: created.setupToken }],
        ['/api/v1/ops/staff/setup/confirm', { token: created.setupToken, code: await codeAt(secret, 1) }],
      ] as const) {
        const again = await post(url, body);
        expect([again.statusCode, again.json().error.code]).toEqual([401, 'staff_setup_token_invalid']);
      }
      const unknown = await post('/api/v1/ops/staff/setup', { token: 'srs_nothing' });
      expect(unknown.json().error.code).toBe('staff_setup_token_invalid');
      const extra = await post('/api/v1/ops/staff/setup', { token: created.setupToken, role: 'security' });
      expect(extra.statusCode).toBe(400);
    });

    it('stores the authenticator secret wrapped by the master key, never in the clear', async () => {
      const { totpSecret, staffId } = await enrolStaff(core, {
        email: 'sealed@platform.test',
        displayName: 'S',
        role: 'support',
      });
      const row = await core.database.control
        .selectFrom('staff')
        .select(['mfa_secret', 'mfa_kek_id'])
        .where('id', '=', staffId)
        .executeTakeFirstOrThrow();
      expect(row.mfa_kek_id).toBe(core.keys.currentKekId);
      expect(Buffer.from(row.mfa_secret!).toString('latin1')).not.toContain(totpSecret);
    });

    it('issues further keys only with a fresh code: wrong and replayed codes are refused', async () => {
      const { apiKey, totpSecret, codeAt } = await enrolStaff(core, {
        email: 'kenny@platform.test',
        displayName: 'Kenny',
        role: 'support',
      });
      const ask = (code: string) =>
        callAs(app, 'POST', '/api/v1/ops/staff/keys', apiKey, { name: 'laptop', code });
      expect((await ask('000000')).json().error.code).toBe('invalid_mfa_code');
      // Enrolment spent this step's code.
      expect((await ask(await codeAt(totpSecret, 0))).json().error.code).toBe('invalid_mfa_code');
      const next = await ask(await codeAt(totpSecret, 1));
      expect(next.statusCode).toBe(201);
      expect((await tenantsWith(next.json().apiKey)).statusCode).toBe(200);
      expect((await ask(await codeAt(totpSecret, 1))).json().error.code).toBe('invalid_mfa_code');
      expect(
        (await callAs(app, 'POST', '/api/v1/ops/staff/keys', 'sro_nope', { name: 'x', code: '1' }))
          .statusCode,
      ).toBe(401);
    });

    it('throttles guessing at the code for a new key', async () => {
      const { apiKey } = await enrolStaff(core, {
        email: 'guess@platform.test',
        displayName: 'G',
        role: 'support',
      });
      const ask = () => callAs(app, 'POST', '/api/v1/ops/staff/keys', apiKey, { name: 'x', code: '000000' });
      for (let i = 0; i < 5; i++) expect((await ask()).json().error.code).toBe('invalid_mfa_code');
      const refused = await ask();
      expect([refused.statusCode, refused.json().error.code]).toEqual([429, 'login_throttled']);
    });

    it('revokes every key at a reset, and lets the person enrol again', async () => {
      const { apiKey } = await enrolStaff(core, {
        email: 'lost@platform.test',
        displayName: 'L',
        role: 'operator',
      });
      expect((await tenantsWith(apiKey)).statusCode).toBe(200);
      const reset = await core.staff.resetMfa('lost@platform.test');
      const codeAt = totpFromNow();
      expect((await tenantsWith(apiKey)).statusCode).toBe(401);
      const { secret } = await core.staff.beginSetup(reset.setupToken);
      const { apiKey: fresh } = await core.staff.completeSetup(reset.setupToken, await codeAt(secret, 0));
      expect((await tenantsWith(fresh)).statusCode).toBe(200);
    });

    it('lets only the security role manage staff, and operators and security list them', async () => {
      const security = (
        await enrolStaff(core, { email: 'sec@platform.test', displayName: 'Sec', role: 'security' })
      ).apiKey;
      const operator = (
        await enrolStaff(core, { email: 'op@platform.test', displayName: 'Op', role: 'operator' })
      ).apiKey;
      const developer = (
        await enrolStaff(core, { email: 'dev@platform.test', displayName: 'Dev', role: 'developer' })
      ).apiKey;
      const newcomer = { email: 'new@platform.test', displayName: 'New', role: 'support' };
      expect((await callAs(app, 'POST', '/api/v1/ops/staff', operator, newcomer)).statusCode).toBe(403);
      const created = await callAs(app, 'POST', '/api/v1/ops/staff', security, newcomer);
      expect(created.statusCode).toBe(201);
      expect(created.json().setupToken).toMatch(/^srs_/);
      expect(
        (await callAs(app, 'POST', '/api/v1/ops/staff', security, { ...newcomer, role: 'root' })).statusCode,
      ).toBe(400);
      expect((await callAs(app, 'GET', '/api/v1/ops/staff', developer)).statusCode).toBe(403);
      const listed = await callAs(app, 'GET', '/api/v1/ops/staff', operator);
      expect(listed.json().items.map((m: { email: string }) => m.email)).toContain('new@platform.test');
      expect(listed.body).not.toMatch(/srs_|sro_|mfa/);
      const disable = (key: string) =>
        callAs(app, 'POST', '/api/v1/ops/staff/disable', key, { email: 'op@platform.test' });
      expect((await disable(operator)).statusCode).toBe(403);
      expect((await disable(security)).statusCode).toBe(204);
      expect((await tenantsWith(operator)).statusCode).toBe(401);
    });
  });
}
