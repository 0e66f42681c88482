import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { type CodeAt, totpFromNow } from '../../../test/support/totp.ts';
import type { Core } from '../../main/compose.ts';
import type { UserPrincipal } from './identity.service.ts';

const password = 'two factors are better than one';
const login = (core: Core, extra: { totp?: string; recoveryCode?: string } = {}) =>
  core.identity.login({ tenant: 'pendant', email: 'elaine@pendant.test', password, ...extra });

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`two-factor authentication on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let principal: UserPrincipal;
    let tenantId: string;
    let secret: string;
    let recoveryCodes: string[];
    /** Codes counted from the enrolment's step, for this whole suite (it runs well within 30 s). */
    let codeAt: CodeAt;

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      const created = await core.tenants.create({
        slug: 'pendant',
        name: 'Pendant',
        ownerEmail: 'elaine@pendant.test',
      });
      tenantId = created.tenant.id;
      const { session } = await core.identity.setupOwner({
        token: created.ownerSetupToken,
        displayName: 'Elaine',
        password,
      });
      principal = (await core.identity.authenticate(session.token))!.principal;
    });
    afterAll(async () => testDb?.close());

    it('enrols with a confirmed code, storing the secret encrypted, and returns 10 recovery codes once', async () => {
      codeAt = totpFromNow();
      const enrolment = await core.mfa.enroll(principal, 'elaine@pendant.test');
      secret = enrolment.secret;
      expect(enrolment.otpauthUri).toMatch(/^otpauth:\/\/totp\/Strongroom:elaine%40pendant\.test\?.*secret=/);
      // Not on until confirmed: login still needs only the password.
      await login(core);
      await expect(core.mfa.confirm(principal, '000000')).rejects.toMatchObject({ code: 'invalid_mfa_code' });
      ({ recoveryCodes } = await core.mfa.confirm(principal, await codeAt(secret, 0)));
      expect(recoveryCodes).toHaveLength(10);
      expect(new Set(recoveryCodes).size).toBe(10);
      for (const code of recoveryCodes)
        expect(code).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
      const stored = await core.withTenant(tenantId, (scope) =>
        scope.db.selectFrom('users').select('mfa_secret').executeTakeFirstOrThrow(),
      );
      expect(stored.mfa_secret).toMatch(/^enc:v1:\d+:/);
      expect(stored.mfa_secret).not.toContain(secret);
      await expect(core.mfa.enroll(principal, 'x')).rejects.toMatchObject({ code: 'mfa_already_enabled' });
    });

    it('asks for the second factor after the right password, and refuses a replayed code', async () => {
      await expect(login(core)).rejects.toMatchObject({ code: 'mfa_required' });
      // The code of this step was spent by the confirmation: a replay.
      await expect(login(core, { totp: await codeAt(secret, 0) })).rejects.toMatchObject({
        code: 'invalid_credentials',
      });
      const next = await codeAt(secret, 1);
      await login(core, { totp: next });
      await expect(login(core, { totp: next })).rejects.toMatchObject({ code: 'invalid_credentials' });
      // Two steps away is outside the ±1 window.
      await expect(login(core, { totp: await codeAt(secret, 3) })).rejects.toMatchObject({
        code: 'invalid_credentials',
      });
    });

    it('accepts each recovery code once, in any case and with or without dashes', async () => {
      const code = recoveryCodes[0]!;
      await login(core, { recoveryCode: code.toLowerCase().replaceAll('-', '') });
      await expect(login(core, { recoveryCode: code })).rejects.toMatchObject({
        code: 'invalid_credentials',
      });
      await login(core, { recoveryCode: recoveryCodes[1]! });
    });
  });
}
