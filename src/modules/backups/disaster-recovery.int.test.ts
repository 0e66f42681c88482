import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, callAs } from '../../../test/support/app.ts';
import {
  openTestCore,
  randomMasterKey,
  type TestDatabase,
  testDatabaseKinds,
} from '../../../test/support/databases.ts';
import { FsObjectStore } from '../../adapters/object-store/object-store.fs.ts';
import type { App } from '../../http/app.ts';
import type { Core } from '../../main/compose.ts';
import type { BackupLocation } from './backup-format.ts';

const password = 'disaster recovery needs a long password';
const canary = 'CANARY-dr-5d1e-plaintext-never-in-backups';

interface Populated {
  slug: string;
  apiKey: string;
  projectId: string;
  recordIds: string[];
  attachmentId: string;
  file: Buffer;
}

/** Roles are cluster-wide: two databases of one server share the tenants' roles (see close()). */
async function dropTenantRoleGrants(db: TestDatabase): Promise<void> {
  const { rows } = await sql<{ rolname: string }>`
    select rolname from pg_catalog.pg_roles where rolname ~ '^t_[0-9a-f]{32}$'`.execute(db.database.db);
  for (const { rolname } of rows) await sql`drop owned by ${sql.id(rolname)}`.execute(db.database.db);
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`disaster recovery on ${kind.name}${kind.skipReason}`, () => {
    let source: Core;
    let sourceDb: TestDatabase;
    let masterKey: Buffer;
    let locations: BackupLocation[];
    let dirs: string[];
    const opened: TestDatabase[] = [];
    const apps: App[] = [];
    const tenants: Populated[] = [];

    async function populate(app: App, slug: string): Promise<Populated> {
      const { tenant, ownerSetupToken } = await source.tenants.create({
        slug,
        name: slug,
        ownerEmail: `owner@${slug}.test`,
      });
      const { session } = await source.identity.setupOwner({
        token: ownerSetupToken,
        displayName: 'Owner',
        password,
      });
      const principal = (await source.identity.authenticate(session.token))!.principal;
      if (principal.kind !== 'user') throw new Error('expected a user');
      const apiKey = (await source.identity.createApiKey(principal, { name: 'dr', access: 'write' })).secret;
      const projectId = (await callAs(app, 'POST', '/api/v1/projects', apiKey, { name: 'Ops' })).json().id;
      const recordIds: string[] = [];
      for (const name of ['Ada', canary]) {
        const created = await callAs(app, 'POST', `/api/v1/projects/${projectId}/records`, apiKey, {
          collection: 'people',
          data: { name, tenant: slug },
        });
        expect(created.statusCode).toBe(201);
        recordIds.push(created.json().id);
      }
      const file = Buffer.from(`${canary} file of ${slug} `.repeat(500));
      const uploaded = await app.inject({
        method: 'PUT',
        url: `/api/v1/projects/${projectId}/attachments`,
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'text/plain' },
        payload: file,
      });
      expect(uploaded.statusCode).toBe(201);
      expect(tenant.slug).toBe(slug);
      return { slug, apiKey, projectId, recordIds, attachmentId: uploaded.json().id, file };
    }

    beforeAll(async () => {
      dirs = ['onsite', 'offsite'].map((name) => mkdtempSync(join(tmpdir(), `strongroom-dr-${name}-`)));
      locations = dirs.map((dir, i) => ({
        name: i === 0 ? 'onsite' : 'offsite',
        store: new FsObjectStore({ rootDir: dir }),
      }));
      ({
        core: source,
        testDb: sourceDb,
        masterKey,
      } = await openTestCore(kind, { backupLocations: locations }));
      const app = await buildTestApp(source);
      apps.push(app);
      tenants.push(await populate(app, 'acme'), await populate(app, 'globex'));
      // The daily round: every tenant's snapshot, then the control plane's.
      await source.backups.snapshotAll();
      expect((await source.backups.snapshotControlPlane()).storedIn).toEqual(['onsite', 'offsite']);
      // Changes after the snapshots reach the locations through the journal only.
      const late = await callAs(
        app,
        'POST',
        `/api/v1/projects/${tenants[0]!.projectId}/records`,
        tenants[0]!.apiKey,
        {
          collection: 'people',
          data: { name: 'Grace (after the snapshot)' },
        },
      );
      tenants[0]!.recordIds.push(late.json().id);
      await source.backups.ship();
    }, 120_000);

    afterAll(async () => {
      for (const app of apps) await app.close();
      // Roles are shared by the databases of one server: release them everywhere, then drop.
      if (kind.name === 'postgres') for (const db of [...opened, sourceDb]) await dropTenantRoleGrants(db);
      for (const db of opened) await db.close();
      await sourceDb?.close();
    });

    it('writes the control plane sealed: no tenant name, email or key material in plaintext', () => {
      const files = dirs.flatMap((dir) =>
        readdirSync(join(dir, 'control', 'snapshots')).map((f) => join(dir, 'control', 'snapshots', f)),
      );
      expect(files.some((f) => f.endsWith('.snap'))).toBe(true);
      for (const file of files) {
        const bytes = readFileSync(file);
        for (const plain of ['owner@acme.test', 'globex', canary])
          expect(bytes.includes(plain), file).toBe(false);
      }
    });

    it('refuses a wrong master key before writing anything', async () => {
      const { core, testDb } = await openTestCore(kind, {
        masterKey: randomMasterKey(),
        backupLocations: locations,
      });
      opened.push(testDb);
      await expect(core.backups.recoverAll({ from: 'offsite' })).rejects.toMatchObject({
        code: 'master_key_mismatch',
      });
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from control.tenants`.execute(
        core.database.db,
      );
      expect(rows[0]?.n).toBe(0);
    });

    it('refuses a database that holds other tenants, and a missing --from', async () => {
      await source.tenants.create({ slug: 'newcomer', name: 'N', ownerEmail: 'o@n.test' });
      await expect(source.backups.recoverAll({ from: 'onsite' })).rejects.toMatchObject({
        code: 'restore_target_not_empty',
      });
      await expect(source.backups.recoverAll({})).rejects.toMatchObject({
        code: 'restore_location_required',
      });
      await expect(source.backups.recoverAll({ from: 'nowhere' })).rejects.toMatchObject({
        code: 'backup_location_unknown',
      });
    });

    for (const from of ['onsite', 'offsite']) {
      it(`rebuilds every tenant from ${from} alone onto an empty database, which then serves`, async () => {
        // A new database and an empty attachment store: nothing survived but one location and the key.
        const objectsDir = mkdtempSync(join(tmpdir(), 'strongroom-dr-objects-'));
        const { core, testDb } = await openTestCore(kind, {
          masterKey,
          backupLocations: locations.filter((l) => l.name === from),
          objects: new FsObjectStore({ rootDir: objectsDir }),
        });
        opened.push(testDb);
        const progress: string[] = [];
        const result = await core.backups.recoverAll({
          from,
          onProgress: (done, total, label) => progress.push(`${done}/${total} ${label}`),
        });
        expect(result.controlPlaneLoaded).toBe(true);
        expect(result.tenants.map((t) => [t.slug, t.outcome])).toEqual(
          expect.arrayContaining([
            ['acme', 'restored'],
            ['globex', 'restored'],
          ]),
        );
        expect(result.tenants).toHaveLength(2);
        expect(progress.at(-1)).toMatch(/^2\/2 /);

        const app = await buildTestApp(core);
        apps.push(app);
        for (const t of tenants) {
          // The API key (control-plane index and tenant row) authenticates; records read back.
          const listed = await callAs(
            app,
            'GET',
            `/api/v1/projects/${t.projectId}/records?limit=50`,
            t.apiKey,
          );
          expect(listed.statusCode).toBe(200);
          expect(
            listed
              .json()
              .items.map((r: { id: string }) => r.id)
              .sort(),
          ).toEqual([...t.recordIds].sort());
          const file = await callAs(
            app,
            'GET',
            `/api/v1/projects/${t.projectId}/attachments/${t.attachmentId}`,
            t.apiKey,
          );
          expect(file.statusCode).toBe(200);
          expect(file.rawPayload.equals(t.file)).toBe(true);
          // Passwords come back with the users: the owner signs in.
          const login = await app.inject({
            method: 'POST',
            url: '/api/v1/auth/login',
            headers: { 'content-type': 'application/json' },
            payload: JSON.stringify({ tenant: t.slug, email: `owner@${t.slug}.test`, password }),
          });
          expect(login.statusCode).toBe(200);
        }
        // The recovered service writes, and its journal ships on after the recovered segments.
        const write = await callAs(
          app,
          'POST',
          `/api/v1/projects/${tenants[0]!.projectId}/records`,
          tenants[0]!.apiKey,
          {
            collection: 'people',
            data: { name: 'after recovery' },
          },
        );
        expect(write.statusCode).toBe(201);
        await sleep(5);
        const shipped = await core.backups.ship();
        expect(shipped.failures).toEqual([]);
        expect((await core.backups.verify()).map((v) => v.problems)).toEqual([[]]);

        // A re-run (after a crash, say) finds everything done and changes nothing.
        const again = await core.backups.recoverAll({ from });
        expect(again.controlPlaneLoaded).toBe(false);
        expect(again.tenants.map((t) => t.outcome)).toEqual(['already_restored', 'already_restored']);
      }, 120_000);
    }
  });
}
