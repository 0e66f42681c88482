import { LocalKeyProvider } from '../adapters/keys/key-provider.local.ts';
import type { Config } from '../config/config.ts';
import { openDatabase } from '../db/database.ts';
import { AuditSigner } from '../modules/audit/audit-signer.ts';
import type { Logger } from '../platform/logger.ts';
import type { Cache } from '../ports/cache.port.ts';
import type { Mailer } from '../ports/mail.port.ts';
import type { ObjectStore } from '../ports/object-store.port.ts';
import { openCache, openMailer, openObjectStore } from './adapters.ts';
import { type Core, composeCore, prepareControlPlane } from './compose.ts';
import { loadAuditSigningKey, loadMasterKey } from './embedded.ts';

/** Everything a process (server or CLI command) runs on, built from config, closed in reverse. */
export interface Runtime {
  core: Core;
  objects: ObjectStore;
  cache: Cache;
  mailer: Mailer;
  close(): Promise<void>;
}

/**
 * Opens the database, cache, object store and mailer, checks the master key against the database
 * and migrates the control plane. A wrong master key stops here, before anything is served or
 * written. Opening the stores connects nothing yet (clients connect on first use).
 */
export async function openRuntime(config: Config, log: Logger): Promise<Runtime> {
  const masterKey = loadMasterKey(config.keys.master, log);
  const keyProvider = new LocalKeyProvider({
    current: masterKey,
    previous: config.keys.previousMaster?.reveal(),
  });
  const auditSigner = new AuditSigner(loadAuditSigningKey(config.audit.signingKey, log));
  const database = await openDatabase(config.database);
  const closers: Array<() => Promise<void>> = [() => database.close()];
  const close = async () => {
    for (const closeOne of closers.reverse())
      await closeOne().catch((error) => log.warn({ err: error }, 'close failed'));
  };
  try {
    // The cache is part of the core (login throttling must hold across nodes).
    const cache = openCache(config.cache.url);
    closers.push(() => cache.close());
    const mailer = openMailer(config.mail);
    closers.push(() => mailer.close());
    const objects = openObjectStore(config.objects);
    closers.push(() => objects.close());
    const backupLocations = config.backup.locations.map((location) => ({
      name: location.name,
      store: openObjectStore(location),
    }));
    for (const location of backupLocations) closers.push(() => location.store.close());
    const core = composeCore({
      database,
      keyProvider,
      cache,
      mailer,
      objects,
      recordMaxBytes: config.recordMaxBytes,
      attachmentMaxBytes: config.attachmentMaxBytes,
      restoreWindowMs: config.restoreWindowDays * 24 * 3600_000,
      tenantLimits: config.tenantLimits,
      supportAccess: config.supportAccess,
      auditSigner,
      audit: {
        checkpointEveryEntries: config.audit.checkpointEveryEntries,
        checkpointIntervalMs: config.audit.checkpointIntervalMs,
        retentionDays: config.audit.retentionDays,
        onError: (error, what) => log.warn({ err: error }, what),
      },
      backupLocations,
      opsEmail: config.backup.opsEmail,
    });
    core.restoreJobs.onError = (error, what) => log.error({ err: error }, what);
    await prepareControlPlane(core);
    return { core, objects, cache, mailer, close };
  } catch (error) {
    await close();
    throw error;
  }
}
