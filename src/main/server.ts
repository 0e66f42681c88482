import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from '../config/config.ts';
import { type App, buildApp } from '../http/app.ts';
import { registerErrorHandling } from '../http/error-handler.ts';
import { refusePlainHttp } from '../http/https-only.ts';
import {
  maintenanceErrors,
  runAttachmentMaintenance,
} from '../modules/attachments/attachment-maintenance.ts';
import { runAuditCheckpoints } from '../modules/audit/audit-checkpoints.ts';
import { backupErrors } from '../modules/backups/backup.errors.ts';
import { isAppError } from '../platform/errors.ts';
import type { Logger } from '../platform/logger.ts';
import { appServices, type Core } from './compose.ts';
import { loadTlsMaterial } from './embedded.ts';
import { openRuntime, type Runtime } from './runtime.ts';

export interface RunningServer {
  app: App;
  runtime: Runtime;
  /** The address the HTTPS (or, behind a proxy, HTTP) listener is bound to. */
  url: string;
  /** Graceful: readiness turns 503, in-flight requests finish, then listeners and pools close. */
  shutdown(reason: string): Promise<void>;
}

/**
 * Starts the service: HTTPS on STRONGROOM_HOST:STRONGROOM_PORT (TLS 1.2+), or plain HTTP behind a
 * trusted TLS-terminating proxy, plus an optional plain-HTTP listener that only redirects pages.
 */
export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const runtime = await openRuntime(config, log);
  let draining = false;
  const { core, objects, cache, mailer } = runtime;
  const behindProxy = config.server.trustProxy !== undefined;
  const tls = behindProxy ? undefined : await loadTlsMaterial(config.server.tls, log);

  const app = await buildApp(
    {
      ...appServices(core),
      readinessChecks: {
        database: () => core.database.ping(),
        objects: () => objects.ping(),
        cache: () => cache.ping(),
        mail: () => mailer.ping(),
      },
      isDraining: () => draining,
      logger: log,
    },
    {
      bodyLimitBytes: config.server.bodyLimitBytes,
      ...(tls ? { https: tls } : {}),
      ...(config.server.trustProxy ? { trustProxy: config.server.trustProxy } : {}),
      httpsPort: config.server.port,
    },
  );
  const address = await app.listen({ host: config.server.host, port: config.server.port });

  let redirect: FastifyInstance | undefined;
  if (config.server.httpRedirectPort !== undefined) {
    const plain = Fastify({ logger: false, bodyLimit: 1024 });
    registerErrorHandling(plain, { bodyLimitBytes: 1024 });
    plain.addHook('onRequest', async (request, reply) => refusePlainHttp(request, reply, config.server.port));
    plain.get('/healthz', async () => ({ status: 'ok' }));
    await plain.listen({ host: config.server.host, port: config.server.httpRedirectPort });
    redirect = plain;
  }
  log.info(
    {
      url: address,
      database: core.database.kind,
      objects: objects?.kind,
      cache: cache?.kind,
      rolesEnabled: core.database.rolesEnabled,
    },
    'strongroom is serving',
  );

  const maintenance = scheduleAttachmentMaintenance(core, log);
  const metering = scheduleMeterFlush(core, log);
  const grantSummaries = scheduleGrantSummaries(core, log);
  // Reads, refusals and errors are batched: written at least every 250 ms.
  core.audit.start();
  const checkpoints = scheduleAuditCheckpoints(core, log);
  if (config.backup.isEmbeddedDefault) {
    log.warn(
      { locations: config.backup.locations.map((l) => (l.kind === 'fs' ? l.rootDir : l.url)) },
      'backups go to two folders on this machine: one disk failure loses both. In production set STRONGROOM_BACKUP_LOCATIONS to two independent failure domains (e.g. a local folder and an S3 bucket elsewhere)',
    );
  }
  const backups = scheduleBackups(core, config, log);

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    shuttingDown ??= (async () => {
      log.info({ reason }, 'shutting down: draining in-flight requests');
      draining = true;
      const force = setTimeout(() => {
        log.error('graceful shutdown took too long; forcing exit');
        process.exit(1);
      }, config.server.shutdownGraceMs);
      force.unref();
      await maintenance.stop();
      await grantSummaries.stop();
      await checkpoints.stop();
      await backups.stop();
      await redirect?.close();
      await app.close();
      // After the last request: its call is counted too.
      await metering.stop();
      // After the last request: write what the batch writer still holds.
      await core.audit.stop();
      await runtime.close();
      clearTimeout(force);
      log.info('stopped');
    })();
    return shuttingDown;
  };
  return { app, runtime, url: address, shutdown };
}

interface Scheduled {
  stop(): Promise<void>;
}

/**
 * Runs `task` every `everyMs` (first after `firstAfterMs`, if given), never two rounds at once; the
 * task handles its own errors. `stop` clears the timers and waits for a round in progress (and, with
 * `runOnStop`, runs one last round: what is counted in memory must not be lost at shutdown).
 */
function schedule(
  task: () => Promise<void>,
  options: { everyMs: number; firstAfterMs?: number; runOnStop?: boolean },
): Scheduled {
  let running: Promise<void> | undefined;
  const run = () =>
    (running ??= task().finally(() => {
      running = undefined;
    }));
  const every = setInterval(run, options.everyMs);
  const first = options.firstAfterMs === undefined ? undefined : setTimeout(run, options.firstAfterMs);
  every.unref();
  first?.unref();
  return {
    async stop() {
      clearInterval(every);
      clearTimeout(first);
      await running;
      if (options.runOnStop) await run();
    },
  };
}

/**
 * Every minute, each node sends the summaries of support grants that ended (each goes out once:
 * a node claims a summary before sending it).
 */
function scheduleGrantSummaries(core: Core, log: Logger): Scheduled {
  return schedule(
    () =>
      core.support.sendEndedGrantSummaries().then(
        () => undefined,
        (error: unknown) => log.warn({ err: error }, 'support grant summaries failed; retrying next minute'),
      ),
    { everyMs: 60_000 },
  );
}

/** Each node adds its counted API calls to the tenants' daily totals every 5 s, and at shutdown. */
function scheduleMeterFlush(core: Core, log: Logger): Scheduled {
  return schedule(
    () =>
      core.meter
        .flush()
        .catch((error: unknown) =>
          log.warn({ err: error }, 'API-call metering could not be written; kept for the next flush'),
        ),
    { everyMs: 5_000, runOnStop: true },
  );
}

/**
 * Runs attachment maintenance a minute after start and then every ten minutes. Whichever node takes
 * the lease does the work; the others find it taken and wait for the next round.
 */
function scheduleAttachmentMaintenance(core: Core, log: Logger): Scheduled {
  return schedule(
    () =>
      runAttachmentMaintenance({
        database: core.database,
        tenants: core.tenantRepository,
        attachments: core.attachments,
        records: core.records,
      }).then(
        (summary) => {
          if (
            summary.purged > 0 ||
            summary.orphansSwept > 0 ||
            summary.incompleteSwept > 0 ||
            summary.idempotencyKeysPruned > 0 ||
            summary.failures.length > 0
          )
            log.info({ summary }, 'attachment maintenance ran');
        },
        (error: unknown) => {
          if (isAppError(error) && error.code === maintenanceErrors.inProgress.code) return;
          log.warn({ err: error }, 'attachment maintenance failed; retrying at the next round');
        },
      ),
    { everyMs: 10 * 60_000, firstAfterMs: 60_000 },
  );
}

/**
 * Every minute: chains what crashed nodes left pending and seals audit chains due a checkpoint (N
 * entries or the interval); a lease lets one node do it at a time.
 */
function scheduleAuditCheckpoints(core: Core, log: Logger): Scheduled {
  return schedule(
    () =>
      runAuditCheckpoints({
        database: core.database,
        tenants: core.tenantRepository,
        audit: core.audit,
      }).then(
        (summary) => {
          if (summary?.failures.length)
            log.warn({ summary }, 'some audit checkpoints failed; retrying next round');
        },
        (error: unknown) => log.warn({ err: error }, 'audit checkpoints failed; retrying next round'),
      ),
    { everyMs: 60_000 },
  );
}

/**
 * Ships the change journal every STRONGROOM_BACKUP_SHIP_INTERVAL_MS, takes the snapshots that are
 * due (STRONGROOM_BACKUP_SNAPSHOT_INTERVAL_HOURS since a tenant's newest one; checked 30 s after start,
 * then every 10 minutes), then deletes backups that have left the restore window. Both run under
 * leases, so with several nodes each round runs on one of them. A round never overlaps the previous one.
 */
function scheduleBackups(core: Core, config: Config, log: Logger): Scheduled {
  const ignoreBusy = (what: string) => (error: unknown) => {
    if (isAppError(error) && error.code === backupErrors.inProgress.code) return;
    log.warn({ err: error }, `${what} failed; retrying at the next round`);
  };
  const shipping = schedule(
    () =>
      core.backups.ship().then((summary) => {
        if (summary.objectsMissing.length > 0)
          log.error(
            { objects: summary.objectsMissing },
            'attachment files named by new rows are missing from the object store: they cannot be backed up',
          );
        if (summary.failures.length > 0)
          log.warn(
            { failures: summary.failures },
            'some backup locations could not be written; their backlog ships when they are back',
          );
      }, ignoreBusy('journal shipping')),
    { everyMs: config.backup.shipIntervalMs },
  );
  const snapshots = schedule(
    () =>
      core.backups.snapshotAll({ dueAfterMs: config.backup.snapshotIntervalMs }).then(async (results) => {
        if (results.length > 0) {
          log.info({ tenants: results.length }, 'snapshots taken');
          // After the tenants' snapshots: disaster recovery finds every tenant with a snapshot in it.
          const control = await core.backups.snapshotControlPlane();
          if (control.failures.length > 0)
            log.warn(
              { failures: control.failures },
              'the control-plane snapshot could not be written everywhere',
            );
        }
        // Only the node that took the snapshot lease gets here: it also applies retention.
        const pruned = await core.backups.prune();
        if (
          pruned.some(
            (p) => p.snapshotsDeleted + p.segmentsDeleted + p.objectsDeleted > 0 || p.problems.length > 0,
          )
        )
          log.info({ pruned }, 'backups past the restore window deleted');
      }, ignoreBusy('snapshots')),
    { everyMs: 10 * 60_000, firstAfterMs: 30_000 },
  );
  // Restore drills: scheduled on every node, run by whichever takes the lease.
  const drills = schedule(
    () =>
      core.backups.drill({ sample: config.backup.drillSample }).then((results) => {
        const failed = results.filter((r) => r.outcome === 'failed');
        if (failed.length > 0)
          log.error(
            {
              drills: failed.map((r) => ({
                id: r.id,
                tenantId: r.tenantId,
                at: r.restoreAt,
                message: r.message,
              })),
            },
            'restore drill failed: a backup could not be restored, or two locations disagree (see `strongroom backup drills`)',
          );
        else if (results.length > 0) log.info({ tenants: results.length }, 'restore drills passed');
      }, ignoreBusy('restore drills')),
    { everyMs: config.backup.drillIntervalMs, firstAfterMs: 5 * 60_000 },
  );
  // API restore jobs: every node starts queued jobs nobody started and fails those whose node died.
  const restoreJobs = schedule(
    () =>
      core.restoreJobs.runPending().then((round) => {
        if (round.interrupted > 0)
          log.warn(
            { jobs: round.interrupted },
            'restore jobs failed as interrupted: the node running them stopped (restore_interrupted)',
          );
      }, ignoreBusy('restore jobs')),
    { everyMs: 5_000 },
  );
  return {
    async stop() {
      await shipping.stop();
      await snapshots.stop();
      await drills.stop();
      await restoreJobs.stop();
      // Restores running here finish first (within the shutdown grace; cut off, another node fails them).
      await core.restoreJobs.stop();
    },
  };
}
