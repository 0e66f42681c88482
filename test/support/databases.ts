import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { LocalKeyProvider } from '../../src/adapters/keys/key-provider.local.ts';
import { OutboxMailer } from '../../src/adapters/mail/mailer.outbox.ts';
import { FsObjectStore } from '../../src/adapters/object-store/object-store.fs.ts';
import { type AnyKysely, type Database, openDatabase } from '../../src/db/database.ts';
import type { Migration } from '../../src/db/migrator.ts';
import { type Core, type CoreOptions, composeCore, prepareControlPlane } from '../../src/main/compose.ts';
import type { AuditSigner } from '../../src/modules/audit/audit-signer.ts';
import type { BackupLocation } from '../../src/modules/backups/backup-format.ts';
import type { SupportAccessSettings } from '../../src/modules/support/support-access.service.ts';
import type { Clock } from '../../src/platform/clock.ts';
import { Secret } from '../../src/platform/secret.ts';
import type { Cache } from '../../src/ports/cache.port.ts';
import type { ObjectStore } from '../../src/ports/object-store.port.ts';
import { findService } from './services.ts';

/**
 * Every database-touching suite runs on both engines: PGlite (in memory) and the Postgres server.
 * Each `open()` gives a brand-new database, so each test file (or test) gets fresh tenants.
 */
export interface TestDatabaseKind {
  name: 'pglite' | 'postgres';
  /** '' when usable, else why the suite skips. */
  skipReason: string;
  open(): Promise<TestDatabase>;
}

export interface TestDatabase {
  database: Database;
  /** A URL for the Postgres server's fresh database (undefined for PGlite). */
  url: string | undefined;
  close(): Promise<void>;
}

export async function testDatabaseKinds(): Promise<TestDatabaseKind[]> {
  const postgres = await findService('postgres');
  return [
    {
      name: 'pglite',
      skipReason: '',
      open: async () => {
        const database = await openDatabase({
          kind: 'pglite',
          dataDir: undefined,
          statementTimeoutMs: 5_000,
          roles: 'auto',
        });
        return { database, url: undefined, close: () => database.close() };
      },
    },
    {
      name: 'postgres',
      skipReason: postgres.skipReason,
      open: () => openFreshPostgres(postgres.url!),
    },
  ];
}

async function openFreshPostgres(adminUrl: string): Promise<TestDatabase> {
  const name = `sr_test_${randomBytes(6).toString('hex')}`;
  const admin: AnyKysely = new Kysely({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: adminUrl, max: 1 }) }),
  });
  await sql`create database ${sql.id(name)}`.execute(admin);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = await openDatabase({
    kind: 'postgres',
    url: new Secret(url.toString()),
    poolSize: 8,
    statementTimeoutMs: 5_000,
    roles: 'auto',
  });
  return {
    database,
    url: url.toString(),
    close: async () => {
      // Roles are cluster-wide: drop the tenant roles this database created before the database itself.
      const roles = await sql<{ rolname: string }>`
        select r.rolname from pg_catalog.pg_roles r
        where r.rolname ~ '^t_[0-9a-f]{32}$'
          and exists (select 1 from pg_catalog.pg_namespace n where n.nspname = r.rolname)`
        .execute(database.db)
        .catch(() => ({ rows: [] as { rolname: string }[] }));
      await database.close();
      await sql`drop database if exists ${sql.id(name)} with (force)`.execute(admin);
      for (const { rolname } of roles.rows) await sql`drop role if exists ${sql.id(rolname)}`.execute(admin);
      await admin.destroy();
    },
  };
}

export function randomMasterKey(): Buffer {
  return randomBytes(32);
}

/** A fresh database with the control plane migrated and the core services built over it. */
export async function openTestCore(
  kind: TestDatabaseKind,
  options: {
    masterKey?: Buffer;
    tenantMigrations?: readonly Migration[];
    /** Where attachments go; default a fresh temporary folder. */
    objects?: ObjectStore;
    attachmentMaxBytes?: number;
    /** Chunk size of new attachment objects (default the product's 256 KiB). */
    attachmentChunkSizeBytes?: number;
    /** Temporary data; default an in-process cache. */
    cache?: Cache;
    /** Time as the services see it; default the system clock. */
    clock?: Clock;
    supportAccess?: SupportAccessSettings;
    /** Backup locations; default none (backup and restore then refuse). */
    backupLocations?: readonly BackupLocation[];
    /** Signs audit checkpoints; default a fresh random key. */
    auditSigner?: AuditSigner;
    audit?: CoreOptions['audit'];
  } = {},
): Promise<{ core: Core; testDb: TestDatabase; masterKey: Buffer; outboxDir: string; objects: ObjectStore }> {
  const testDb = await kind.open();
  const masterKey = options.masterKey ?? randomMasterKey();
  const outboxDir = mkdtempSync(join(tmpdir(), 'strongroom-outbox-'));
  const objects =
    options.objects ?? new FsObjectStore({ rootDir: mkdtempSync(join(tmpdir(), 'strongroom-objects-')) });
  const core = composeCore({
    objects,
    ...(options.attachmentMaxBytes ? { attachmentMaxBytes: options.attachmentMaxBytes } : {}),
    ...(options.attachmentChunkSizeBytes
      ? { attachmentChunkSizeBytes: options.attachmentChunkSizeBytes }
      : {}),
    ...(options.cache ? { cache: options.cache } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.supportAccess ? { supportAccess: options.supportAccess } : {}),
    ...(options.backupLocations ? { backupLocations: options.backupLocations } : {}),
    ...(options.auditSigner ? { auditSigner: options.auditSigner } : {}),
    ...(options.audit ? { audit: options.audit } : {}),
    mailer: new OutboxMailer({ dir: outboxDir, from: 'Strongroom <no-reply@strongroom.localhost>' }),
    database: testDb.database,
    keyProvider: new LocalKeyProvider({ current: masterKey }),
    ...(options.tenantMigrations ? { tenantMigrations: options.tenantMigrations } : {}),
  });
  await prepareControlPlane(core);
  return { core, testDb, masterKey, outboxDir, objects };
}
