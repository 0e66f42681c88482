import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import type { Core } from '../../main/compose.ts';
import type { UserPrincipal } from './identity.service.ts';

/** The invitation token of the newest .eml in the outbox addressed to `email`. */
function invitationTokenFor(outboxDir: string, email: string): string {
  const mails = readdirSync(outboxDir)
    .filter((name) => name.endsWith('.eml'))
    .sort()
    .map((name) => readFileSync(join(outboxDir, name), 'utf8'))
    .filter((raw) => raw.includes(`To: ${email}`));
  const token = /sri_[A-Za-z0-9_-]{43}/.exec(mails.at(-1) ?? '')?.[0];
  if (!token) throw new Error(`no invitation mailed to ${email}`);
  return token;
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`invitations on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let outboxDir: string;
    let owner: UserPrincipal;
    let ownerSetupToken: string;

    beforeAll(async () => {
      ({ core, testDb, outboxDir } = await openTestCore(kind));
      const created = await core.tenants.create({
        slug: 'hooli',
        name: 'Hooli',
        ownerEmail: 'gavin@hooli.test',
      });
      ownerSetupToken = created.ownerSetupToken;
      const { session } = await core.identity.setupOwner({
        token: created.ownerSetupToken,
        displayName: 'Gavin',
        password: 'the owner has a long passphrase',
      });
      owner = (await core.identity.authenticate(session.token))!.principal;
    });
    afterAll(async () => testDb?.close());

    it('mails a one-time token; the invitee chooses a password and is signed in', async () => {
      const invited = await core.identity.invite(owner, { email: 'Richard@Hooli.test', role: 'member' });
      expect(invited).toMatchObject({ email: 'richard@hooli.test', status: 'invited', role: 'member' });
      const token = invitationTokenFor(outboxDir, 'richard@hooli.test');
      await expect(
        core.identity.login({
          tenant: 'hooli',
          email: 'richard@hooli.test',
          password: 'not set yet, cannot sign in',
        }),
      ).rejects.toMatchObject({ code: 'invalid_credentials' });
      const accepted = await core.identity.acceptInvitation({
        token,
        displayName: 'Richard',
        password: 'pied piper compression is best',
      });
      expect(accepted.user).toMatchObject({
        email: 'richard@hooli.test',
        status: 'active',
        displayName: 'Richard',
      });
      expect((await core.identity.authenticate(accepted.session.token))?.principal.role).toBe('member');
      await expect(
        core.identity.acceptInvitation({
          token,
          displayName: 'Again',
          password: 'pied piper compression is best',
        }),
      ).rejects.toMatchObject({ code: 'setup_token_invalid' });
    });

    it('never lets an invitation token set up an owner, nor an owner token accept an invitation', async () => {
      await core.identity.invite(owner, { email: 'erlich@hooli.test', role: 'admin' });
      const token = invitationTokenFor(outboxDir, 'erlich@hooli.test');
      await expect(
        core.identity.setupOwner({ token, displayName: 'Erlich', password: 'aviato aviato aviato forever' }),
      ).rejects.toMatchObject({ code: 'setup_token_invalid' });
      await expect(
        core.identity.acceptInvitation({
          token: ownerSetupToken,
          displayName: 'X',
          password: 'some other long passphrase',
        }),
      ).rejects.toMatchObject({ code: 'setup_token_invalid' });
    });

    it('refuses a second account for the same email, and invitations from members', async () => {
      await expect(
        core.identity.invite(owner, { email: 'richard@hooli.test', role: 'member' }),
      ).rejects.toMatchObject({
        code: 'user_exists',
      });
      const { session } = await core.identity.login({
        tenant: 'hooli',
        email: 'richard@hooli.test',
        password: 'pied piper compression is best',
      });
      const member = (await core.identity.authenticate(session.token))!.principal;
      await expect(
        core.identity.invite(member, { email: 'dinesh@hooli.test', role: 'admin' }),
      ).rejects.toMatchObject({
        code: 'forbidden',
      });
      await expect(core.identity.listUsers(member)).rejects.toMatchObject({ code: 'forbidden' });
      const users = await core.identity.listUsers(owner);
      expect(users.map((u) => [u.email, u.status])).toEqual([
        ['erlich@hooli.test', 'invited'],
        ['gavin@hooli.test', 'active'],
        ['richard@hooli.test', 'active'],
      ]);
    });
  });
}
