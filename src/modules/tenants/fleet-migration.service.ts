import { type Kysely, sql } from 'kysely';
import type { ControlTables } from '../../db/control-tables.ts';
import type { Database } from '../../db/database.ts';
import { type Lease, newLeaseHolder, withLease } from '../../db/leases.ts';
import { latestMigrationName, type Migration } from '../../db/migrator.ts';
import { migrateTenantSchema } from '../../db/tenant-schemas.ts';
import { defineError } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import type { Tenant, TenantRepository } from './tenant.repository.ts';

export interface FleetOptions {
  /** Tenants per batch after the canary. */
  batchSize: number;
  /** Tenants migrated at once within a batch. */
  concurrency: number;
  /** Tenants migrated first, alone; any failure among them stops the run before the fleet. */
  canarySize: number;
  onProgress?: (progress: FleetProgress) => void;
}

export interface FleetProgress {
  phase: 'canary' | 'fleet';
  total: number;
  migrated: number;
  failed: number;
}

export interface FleetFailure {
  tenantId: string;
  slug: string;
  error: string;
}

export interface FleetSummary {
  runId: string;
  target: string | null;
  status: 'succeeded' | 'failed' | 'aborted';
  total: number;
  migrated: number;
  failed: number;
  /** Tenants not attempted (after a canary failure or a lost lease); the next run picks them up. */
  skipped: number;
  failures: FleetFailure[];
  abortReason: string | undefined;
}

export const fleetErrors = {
  inProgress: defineError(
    'migration_in_progress',
    'conflict',
    'Another fleet migration is running.',
    (holder: string, since: Date, until: Date) => ({
      message: `another migration is running (${holder}, since ${since.toISOString()}); its lease runs until ${until.toISOString()} unless renewed`,
      details: { holder, since: since.toISOString(), until: until.toISOString() },
    }),
  ),
};

const leaseName = 'fleet-migration';
const leaseTtlMs = 60_000;
/** Per-tenant bound on waiting for a table lock, so a busy tenant fails fast instead of stalling traffic. */
const lockTimeout = '5s';

/**
 * `strongroom migrate` for tenants: applies the tenant migrations to every live tenant, a canary
 * batch first, then in batches with bounded concurrency. One lease in the control plane keeps a
 * second migrator out. Each tenant migrates in its own transaction that also records its new version,
 * so a crash leaves every tenant either done or untouched, and the next run continues with the rest.
 */
export class FleetMigrationService {
  readonly #database: Pick<
    Database,
    'db' | 'control' | 'rolesEnabled' | 'isSuperuser' | 'statementTimeoutMs'
  >;
  readonly #tenants: TenantRepository;
  readonly #migrations: readonly Migration[];

  constructor(deps: {
    database: Pick<Database, 'db' | 'control' | 'rolesEnabled' | 'isSuperuser' | 'statementTimeoutMs'>;
    tenants: TenantRepository;
    migrations: readonly Migration[];
  }) {
    this.#database = deps.database;
    this.#tenants = deps.tenants;
    this.#migrations = deps.migrations;
  }

  async run(options: FleetOptions): Promise<FleetSummary> {
    const control = this.#database.control;
    const holder = newLeaseHolder();
    const outcome = await withLease(control, leaseName, holder, leaseTtlMs, (lease, isLost) =>
      this.#runHoldingLease(lease, options, isLost),
    );
    if ('conflict' in outcome) {
      const { conflict } = outcome;
      throw fleetErrors.inProgress(conflict.holder, conflict.acquiredAt, conflict.expiresAt);
    }
    return outcome.value;
  }

  async #runHoldingLease(
    lease: Lease,
    options: FleetOptions,
    isLeaseLost: () => boolean,
  ): Promise<FleetSummary> {
    const control = this.#database.control;
    const target = latestMigrationName(this.#migrations);
    // Any run still marked running was cut off (we hold the lease now, so its holder is gone).
    await control
      .updateTable('migration_runs')
      .set({ status: 'aborted', finished_at: sql`now()` })
      .where('status', '=', 'running')
      .execute();

    const total = await this.#tenants.countNeedingMigration(target);
    const runId = newId();
    await control
      .insertInto('migration_runs')
      .values({
        id: runId,
        holder: lease.holder,
        target: target ?? '',
        status: 'running',
        started_at: sql`now()`,
        tenants_total: total,
      })
      .execute();

    const summary: FleetSummary = {
      runId,
      target,
      status: 'succeeded',
      total,
      migrated: 0,
      failed: 0,
      skipped: 0,
      failures: [],
      abortReason: undefined,
    };
    const attempted = new Set<string>();
    const report = (phase: FleetProgress['phase']) =>
      options.onProgress?.({ phase, total, migrated: summary.migrated, failed: summary.failed });

    let phase: FleetProgress['phase'] = options.canarySize > 0 ? 'canary' : 'fleet';
    report(phase);
    for (;;) {
      if (isLeaseLost()) {
        summary.abortReason = 'the migration lease was lost (another migrator took over)';
        break;
      }
      const size = phase === 'canary' ? options.canarySize : options.batchSize;
      // Failed tenants stay "needing migration"; skip the ones this run already tried.
      const batch = (await this.#tenants.listNeedingMigration(target, size + attempted.size)).filter(
        (t) => !attempted.has(t.id),
      );
      if (batch.length === 0) break;
      const slice = batch.slice(0, size);
      for (const tenant of slice) attempted.add(tenant.id);
      const failedBefore = summary.failed;
      await runBounded(slice, options.concurrency, async (tenant) => {
        const error = await this.#migrateOne(tenant, target);
        if (error === undefined) summary.migrated++;
        else {
          summary.failed++;
          summary.failures.push({ tenantId: tenant.id, slug: tenant.slug, error });
        }
        report(phase);
      });
      await control
        .updateTable('migration_runs')
        .set({ tenants_migrated: summary.migrated, tenants_failed: summary.failed })
        .where('id', '=', runId)
        .execute();
      if (phase === 'canary') {
        if (summary.failed > failedBefore) {
          summary.abortReason = `the canary batch failed on ${summary.failed - failedBefore} of ${slice.length} tenants; the rest of the fleet was not touched`;
          break;
        }
        phase = 'fleet';
      }
    }
    summary.skipped = Math.max(0, total - summary.migrated - summary.failed);
    summary.status = summary.abortReason ? 'aborted' : summary.failed > 0 ? 'failed' : 'succeeded';
    await control
      .updateTable('migration_runs')
      .set({ status: summary.status, finished_at: sql`now()` })
      .where('id', '=', runId)
      .execute();
    return summary;
  }

  /** Migrates one tenant and records its version in the same transaction; returns an error message or undefined. */
  async #migrateOne(tenant: Tenant, target: string | null): Promise<string | undefined> {
    try {
      await this.#database.db.transaction().execute(async (trx) => {
        await sql`select set_config('lock_timeout', ${lockTimeout}, true), set_config('statement_timeout', ${`${this.#database.statementTimeoutMs * 6}ms`}, true)`.execute(
          trx,
        );
        await migrateTenantSchema(trx, this.#database, tenant.id, this.#migrations);
        await this.#tenants.recordMigrated(
          trx.withSchema('control') as unknown as Kysely<ControlTables>,
          tenant.id,
          target,
        );
      });
      return undefined;
    } catch (error) {
      const message = (error as Error)?.message ?? String(error);
      await this.#tenants.recordMigrationFailed(tenant.id, message);
      return message;
    }
  }
}

/** Runs `work` over `items` with at most `limit` in flight; after a failure no new item starts. */
async function runBounded<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
