import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { legacyPasswordHash } from '../../crypto/password.ts';
import { hashToken } from '../../crypto/tokens.ts';
import type { Core } from '../../main/compose.ts';
import { newId } from '../../platform/ids.ts';

const ownerPassword = 'a long and quiet river at dawn';

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`identity on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let acme: { id: string; token: string };

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
      const created = await core.tenants.create({ slug: 'acme', name: 'Acme', ownerEmail: 'ada@acme.test' });
      acme = { id: created.tenant.id, token: created.ownerSetupToken };
    });
    afterAll(async () => testDb?.close());

    it('sets up the owner once with the one-time token, then refuses the token', async () => {
      await expect(
        core.identity.setupOwner({ token: acme.token, displayName: 'Ada', password: 'too short' }),
      ).rejects.toMatchObject({ code: 'password_too_short' });
      await expect(
        core.identity.setupOwner({ token: acme.token, displayName: 'Ada', password: 'ada@acme.test-acme' }),
      ).rejects.toMatchObject({ code: 'password_too_common' });
      const { user, session } = await core.identity.setupOwner({
        token: acme.token,
        displayName: 'Ada Lovelace',
        password: ownerPassword,
      });
      expect(user).toMatchObject({
        email: 'ada@acme.test',
        displayName: 'Ada Lovelace',
        role: 'owner',
        status: 'active',
      });
      expect(session.token).toMatch(/^srt_[A-Za-z0-9_-]{43}$/);
      const me = await core.identity.authenticate(session.token);
      expect(me?.principal).toMatchObject({
        kind: 'user',
        tenantId: acme.id,
        userId: user.id,
        role: 'owner',
      });
      await expect(
        core.identity.setupOwner({
          token: acme.token,
          displayName: 'Mallory',
          password: 'another long password here',
        }),
      ).rejects.toMatchObject({ code: 'setup_token_invalid' });
      await expect(
        core.identity.setupOwner({
          token: 'srs_made-up',
          displayName: 'M',
          password: 'another long password here',
        }),
      ).rejects.toMatchObject({ code: 'setup_token_invalid' });
    });

    it('logs in, and answers every wrong combination identically', async () => {
      const ok = await core.identity.login({
        tenant: 'acme',
        email: 'ADA@acme.test',
        password: ownerPassword,
      });
      expect(ok.user.email).toBe('ada@acme.test');
      const wrong = [
        { tenant: 'acme', email: 'ada@acme.test', password: `${ownerPassword}!` },
        { tenant: 'acme', email: 'nobody@acme.test', password: ownerPassword },
        { tenant: 'nope', email: 'ada@acme.test', password: ownerPassword },
        { tenant: 'acme', email: 'not an email', password: ownerPassword },
        { tenant: 'acme', email: 'ada@acme.test', password: 'x'.repeat(5000) },
      ];
      for (const attempt of wrong) {
        await expect(core.identity.login(attempt)).rejects.toMatchObject({
          code: 'invalid_credentials',
          message: 'The tenant, email or password is wrong, or the account cannot sign in.',
        });
      }
    });

    it('ends one session on logout and all of them on logout-everywhere', async () => {
      const one = await core.identity.login({
        tenant: 'acme',
        email: 'ada@acme.test',
        password: ownerPassword,
      });
      const two = await core.identity.login({
        tenant: 'acme',
        email: 'ada@acme.test',
        password: ownerPassword,
      });
      const first = await core.identity.authenticate(one.session.token);
      await core.identity.logout(first!.principal);
      expect(await core.identity.authenticate(one.session.token)).toBeUndefined();
      const second = await core.identity.authenticate(two.session.token);
      expect(second).toBeDefined();
      expect(await core.identity.logoutEverywhere(second!.principal)).toBeGreaterThanOrEqual(1);
      expect(await core.identity.authenticate(two.session.token)).toBeUndefined();
    });

    it('kills sessions of a disabled account at once', async () => {
      const { session } = await core.identity.login({
        tenant: 'acme',
        email: 'ada@acme.test',
        password: ownerPassword,
      });
      await core.withTenant(acme.id, (scope) =>
        scope.db
          .updateTable('users')
          .set({ status: 'disabled' })
          .where('email', '=', 'ada@acme.test')
          .execute(),
      );
      try {
        expect(await core.identity.authenticate(session.token)).toBeUndefined();
        await expect(
          core.identity.login({ tenant: 'acme', email: 'ada@acme.test', password: ownerPassword }),
        ).rejects.toMatchObject({ code: 'invalid_credentials' });
      } finally {
        await core.withTenant(acme.id, (scope) =>
          scope.db
            .updateTable('users')
            .set({ status: 'active' })
            .where('email', '=', 'ada@acme.test')
            .execute(),
        );
      }
    });

    it('upgrades an imported legacy SHA-2 hash to argon2id at the first login', async () => {
      const legacy = legacyPasswordHash('sha256', 'mingle-salt', 'imported from the old system');
      await core.withTenant(acme.id, (scope) =>
        scope.db
          .insertInto('users')
          .values({
            id: newId(),
            email: 'grace@acme.test',
            display_name: 'Grace',
            status: 'active',
            role: 'member',
            password_hash: legacy,
          })
          .execute(),
      );
      await core.identity.login({
        tenant: 'acme',
        email: 'grace@acme.test',
        password: 'imported from the old system',
      });
      const stored = await core.withTenant(acme.id, (scope) =>
        scope.db
          .selectFrom('users')
          .select('password_hash')
          .where('email', '=', 'grace@acme.test')
          .executeTakeFirstOrThrow(),
      );
      expect(stored.password_hash).toMatch(/^\$argon2id\$/);
      await core.identity.login({
        tenant: 'acme',
        email: 'grace@acme.test',
        password: 'imported from the old system',
      });
    });

    it("keeps tenants apart: another tenant's account and password open nothing here", async () => {
      const globex = await core.tenants.create({
        slug: 'globex',
        name: 'Globex',
        ownerEmail: 'ada@acme.test',
      });
      await core.identity.setupOwner({
        token: globex.ownerSetupToken,
        displayName: 'Ada at Globex',
        password: 'globex has its own long password',
      });
      await expect(
        core.identity.login({
          tenant: 'acme',
          email: 'ada@acme.test',
          password: 'globex has its own long password',
        }),
      ).rejects.toMatchObject({ code: 'invalid_credentials' });
      const inGlobex = await core.identity.login({
        tenant: 'globex',
        email: 'ada@acme.test',
        password: 'globex has its own long password',
      });
      const principal = await core.identity.authenticate(inGlobex.session.token);
      expect(principal?.principal.tenantId).toBe(globex.tenant.id);
      // The session lives in Globex's schema only.
      const tokenHash = hashToken(inGlobex.session.token);
      const inAcme = await core.withTenant(acme.id, (scope) =>
        scope.db.selectFrom('sessions').select('id').where('token_hash', '=', tokenHash).execute(),
      );
      expect(inAcme).toEqual([]);
      const inGlobexSchema = await core.withTenant(globex.tenant.id, (scope) =>
        scope.db.selectFrom('sessions').select('id').where('token_hash', '=', tokenHash).execute(),
      );
      expect(inGlobexSchema).toHaveLength(1);
    });

    it('refuses sessions of a suspended tenant, and forgets them when it is deleted', async () => {
      const { session } = await core.identity.login({
        tenant: 'globex',
        email: 'ada@acme.test',
        password: 'globex has its own long password',
      });
      // Used first, so it is in the principal cache (where the cache is on) when the tenant stops.
      expect(await core.identity.authenticate(session.token)).toBeDefined();
      await core.tenants.suspend('globex');
      await expect(core.identity.authenticate(session.token)).rejects.toMatchObject({
        code: 'tenant_suspended',
      });
      await expect(
        core.identity.login({
          tenant: 'globex',
          email: 'ada@acme.test',
          password: 'globex has its own long password',
        }),
      ).rejects.toMatchObject({ code: 'tenant_suspended' });
      await core.tenants.resume('globex');
      expect(await core.identity.authenticate(session.token)).toBeDefined();
      await core.tenants.delete('globex', 'globex');
      expect(await core.identity.authenticate(session.token)).toBeUndefined();
    });
  });
}
