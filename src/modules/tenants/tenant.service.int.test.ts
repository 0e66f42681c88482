import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { tenantMigrations } from '../../db/migrations/tenant/index.ts';
import type { Migration } from '../../db/migrator.ts';
import type { Core } from '../../main/compose.ts';

async function schemaExists(core: Core, schema: string): Promise<boolean> {
  const { rows } = await sql<{
    n: number;
  }>`select count(*)::int as n from pg_catalog.pg_namespace where nspname = ${schema}`.execute(
    core.database.db,
  );
  return rows[0]!.n === 1;
}

async function roleExists(core: Core, role: string): Promise<boolean> {
  const { rows } = await sql<{
    n: number;
  }>`select count(*)::int as n from pg_catalog.pg_roles where rolname = ${role}`.execute(core.database.db);
  return rows[0]!.n === 1;
}

const schemaOf = (id: string) => `t_${id.replaceAll('-', '')}`;

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`tenant lifecycle on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;

    beforeAll(async () => {
      ({ core, testDb } = await openTestCore(kind));
    });
    afterAll(async () => testDb?.close());

    it('creates schema, role, wrapped key and a one-time owner token together', async () => {
      const created = await core.tenants.create({
        slug: 'acme',
        name: 'Acme',
        ownerEmail: 'Owner@Acme.test',
      });
      expect(created.tenant).toMatchObject({ slug: 'acme', name: 'Acme', status: 'active' });
      expect(created.tenant.schemaVersion).toBe(tenantMigrations.at(-1)!.name);
      expect(created.ownerSetupToken).toMatch(/^srs_[A-Za-z0-9_-]{43}$/);
      expect(await schemaExists(core, schemaOf(created.tenant.id))).toBe(true);
      expect(await roleExists(core, schemaOf(created.tenant.id))).toBe(true);
      const key = await core.keys.getDataKey(created.tenant.id);
      expect(key.version).toBe(1);
      expect(key.bytes).toHaveLength(32);
      const stored = await core.database.control
        .selectFrom('setup_tokens')
        .select(['email', 'token_hash'])
        .where('tenant_id', '=', created.tenant.id)
        .executeTakeFirstOrThrow();
      expect(stored.email).toBe('owner@acme.test');
      // Only the hash is stored, never the token itself.
      expect(Buffer.from(stored.token_hash).toString('utf8')).not.toContain(created.ownerSetupToken);
      const wrapped = await core.database.control
        .selectFrom('tenant_keys')
        .select('wrapped')
        .where('tenant_id', '=', created.tenant.id)
        .executeTakeFirstOrThrow();
      expect(Buffer.from(wrapped.wrapped).includes(key.bytes)).toBe(false);
    });

    it('rejects hostile and malformed slugs with a precise error', async () => {
      const cases: Array<[unknown, RegExp]> = [
        ['../x', /only a-z/],
        ['public', /reserved/],
        ['pg_catalog', /only a-z/],
        ['pg-catalog', /reserved/],
        ['a'.repeat(64), /longer than 40/],
        ['ab', /shorter than 3/],
        ["acme'; drop", /only a-z/],
        ['ac"me', /only a-z/],
        ['ac\u0000me', /only a-z/],
        ['-acme', /start and end/],
        ['Acme', /only a-z/],
        [42, /must be a string/],
      ];
      for (const [slug, reason] of cases) {
        await expect(
          core.tenants.create({ slug: slug as string, name: 'X', ownerEmail: 'o@x.test' }),
        ).rejects.toMatchObject({ code: 'invalid_slug', message: expect.stringMatching(reason) });
      }
      await expect(
        core.tenants.create({ slug: 'okay', name: '', ownerEmail: 'o@x.test' }),
      ).rejects.toMatchObject({
        code: 'invalid_tenant_name',
      });
      await expect(
        core.tenants.create({ slug: 'okay', name: 'X', ownerEmail: 'not-an-email' }),
      ).rejects.toMatchObject({
        code: 'invalid_email',
      });
      expect((await core.tenants.list()).map((t) => t.slug)).not.toContain('okay');
    });

    it('refuses a taken slug', async () => {
      await core.tenants.create({ slug: 'taken', name: 'One', ownerEmail: 'o@x.test' });
      await expect(
        core.tenants.create({ slug: 'taken', name: 'Two', ownerEmail: 'o@x.test' }),
      ).rejects.toMatchObject({
        code: 'slug_taken',
      });
    });

    it('is all-or-nothing: a failure mid-creation leaves no row, schema, role or key', async () => {
      const failing: Migration = {
        name: '29991231000000-fail-on-purpose',
        up: async () => {
          throw new Error('boom');
        },
        down: async () => undefined,
      };
      const { core: broken, testDb: brokenDb } = await openTestCore(kind, {
        tenantMigrations: [...tenantMigrations, failing],
      });
      try {
        await expect(
          broken.tenants.create({ slug: 'half', name: 'Half', ownerEmail: 'o@x.test' }),
        ).rejects.toMatchObject({
          code: 'migration_failed',
        });
        expect(await broken.tenants.list({ includeDeleted: true })).toEqual([]);
        const leftovers = await sql<{ n: number }>`
          select count(*)::int as n from pg_catalog.pg_namespace where nspname ~ '^t_[0-9a-f]{32}$'`.execute(
          broken.database.db,
        );
        expect(leftovers.rows[0]!.n).toBe(0);
        const keys = await broken.database.control.selectFrom('tenant_keys').selectAll().execute();
        expect(keys).toEqual([]);
      } finally {
        await brokenDb.close();
      }
    });

    it('suspends and resumes, refusing impossible transitions', async () => {
      const { tenant } = await core.tenants.create({ slug: 'sleepy', name: 'S', ownerEmail: 'o@x.test' });
      expect((await core.tenants.suspend('sleepy')).status).toBe('suspended');
      await expect(core.tenants.suspend(tenant.id)).rejects.toMatchObject({ code: 'invalid_tenant_state' });
      expect((await core.tenants.resume(tenant.id)).status).toBe('active');
      await expect(core.tenants.resume('sleepy')).rejects.toMatchObject({ code: 'invalid_tenant_state' });
      await expect(core.tenants.suspend('nobody')).rejects.toMatchObject({ code: 'tenant_not_found' });
    });

    it('deletes only with confirmation, dropping schema and role and destroying the key', async () => {
      const { tenant } = await core.tenants.create({ slug: 'doomed', name: 'D', ownerEmail: 'o@x.test' });
      await core.keys.getDataKey(tenant.id);
      await expect(core.tenants.delete('doomed', undefined)).rejects.toMatchObject({
        code: 'confirmation_required',
      });
      await expect(core.tenants.delete('doomed', 'other')).rejects.toMatchObject({
        code: 'confirmation_required',
      });
      expect(await schemaExists(core, schemaOf(tenant.id))).toBe(true);

      const deleted = await core.tenants.delete('doomed', 'doomed');
      expect(deleted).toMatchObject({ status: 'deleted', name: null });
      expect(await schemaExists(core, schemaOf(tenant.id))).toBe(false);
      expect(await roleExists(core, schemaOf(tenant.id))).toBe(false);
      await expect(core.keys.getDataKey(tenant.id)).rejects.toMatchObject({ code: 'data_key_missing' });
      await expect(core.withTenant(tenant.id, async () => 'ran')).rejects.toMatchObject({
        code: 'tenant_not_found',
      });
      await expect(core.tenants.delete(tenant.id, 'doomed')).rejects.toMatchObject({
        code: 'tenant_not_found',
      });
      // The slug is free again; the tombstone stays listed only on request.
      expect((await core.tenants.list()).map((t) => t.slug)).not.toContain('doomed');
      expect((await core.tenants.list({ includeDeleted: true })).map((t) => t.id)).toContain(tenant.id);
      const again = await core.tenants.create({ slug: 'doomed', name: 'D2', ownerEmail: 'o@x.test' });
      expect(again.tenant.id).not.toBe(tenant.id);
    });
  });
}
