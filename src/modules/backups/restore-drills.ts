import type { Kysely } from 'kysely';
import type { ControlTables } from '../../db/control-tables.ts';
import type { Database } from '../../db/database.ts';
import { newLeaseHolder, withLease } from '../../db/leases.ts';
import type { Clock } from '../../platform/clock.ts';
import { isAppError } from '../../platform/errors.ts';
import { isUuid, newId } from '../../platform/ids.ts';
import type { Mailer } from '../../ports/mail.port.ts';
import { tenantErrors } from '../tenants/tenant.errors.ts';
import type { TenantRepository } from '../tenants/tenant.repository.ts';
import { backupErrors } from './backup.errors.ts';
import { checksumTables } from './backup.repository.ts';
import type { BackupLocation } from './backup-format.ts';
import type { RestoreService } from './restore.service.ts';

type Checksums = Record<string, { rows: number; md5: string }>;

export interface DrillResult {
  id: string;
  tenantId: string;
  restoreAt: string;
  locations: string[];
  startedAt: string;
  finishedAt: string;
  outcome: 'passed' | 'failed';
  /** Per location: the scratch restore's row count and checksum per table. */
  tables: Record<string, Checksums>;
  message: string | null;
}

const leaseName = 'backup-drill';
const leaseTtlMs = 60_000;

/**
 * Restore drills. Each drilled tenant is restored at a random instant of its window from **every**
 * location, each into a scratch schema (RestoreService.drill: the whole restore with all its checks,
 * then rolled back, so nothing is left to drop even after a crash). What is compared: the per-table
 * row counts and checksums of the scratch restores, location against location. The live tenant has
 * moved on since that instant and no past state is kept anywhere else, so the other location is the
 * independent witness: both were written separately, and must decode to the same rows. A restore
 * that fails (a missing or corrupt file, a gap, a wrong key) or a difference fails the drill, which
 * is recorded in `control.backup_drills`, logged by the caller and mailed to the ops address.
 */
export class RestoreDrills {
  readonly #database: Database;
  readonly #tenants: TenantRepository;
  readonly #restores: RestoreService;
  readonly #locations: readonly BackupLocation[];
  readonly #clock: Clock;
  readonly #restoreWindowMs: number;
  readonly #alerts: { mailer: Mailer; to: string } | undefined;

  constructor(deps: {
    database: Database;
    tenants: TenantRepository;
    restores: RestoreService;
    locations: readonly BackupLocation[];
    clock: Clock;
    restoreWindowMs: number;
    alerts?: { mailer: Mailer; to: string } | undefined;
  }) {
    this.#database = deps.database;
    this.#tenants = deps.tenants;
    this.#restores = deps.restores;
    this.#locations = deps.locations;
    this.#clock = deps.clock;
    this.#restoreWindowMs = deps.restoreWindowMs;
    this.#alerts = deps.alerts;
  }

  /** Drills one tenant (by slug or id) or a random sample of live tenants, once at a time across nodes. */
  async run(options: { tenant?: string; sample?: number } = {}): Promise<DrillResult[]> {
    if (this.#locations.length === 0) throw backupErrors.noLocations();
    let tenantIds: string[];
    if (options.tenant !== undefined) {
      const tenant = isUuid(options.tenant)
        ? await this.#tenants.findById(options.tenant)
        : await this.#tenants.findLiveBySlug(options.tenant);
      if (!tenant || tenant.status === 'deleted') throw tenantErrors.notFound();
      tenantIds = [tenant.id];
    } else {
      tenantIds = pickRandom(await this.#tenants.listLiveIds(), options.sample ?? 2);
    }
    const outcome = await withLease(
      this.#database.control,
      leaseName,
      newLeaseHolder(),
      leaseTtlMs,
      async () => {
        const results: DrillResult[] = [];
        for (const tenantId of tenantIds) {
          const result = await this.#drillTenant(tenantId);
          if (result) results.push(result);
        }
        return results;
      },
    );
    if ('conflict' in outcome) throw backupErrors.inProgress('a restore drill', outcome.conflict.holder);
    const failed = outcome.value.filter((r) => r.outcome === 'failed');
    if (failed.length > 0 && this.#alerts) {
      await this.#alerts.mailer.send({
        to: [this.#alerts.to],
        subject: `Strongroom: ${failed.length} restore drill(s) failed`,
        text: [
          'A scheduled restore drill failed: a backup could not be restored, or two locations disagree.',
          'Run `strongroom backup verify` and `strongroom backup drills` for details.',
          '',
          ...failed.map((r) => `tenant ${r.tenantId} at ${r.restoreAt}: ${r.message}`),
        ].join('\n'),
      });
    }
    return outcome.value;
  }

  async list(limit = 50): Promise<DrillResult[]> {
    const rows = await this.#control()
      .selectFrom('backup_drills')
      .selectAll()
      .orderBy('started_at', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      id: r.id,
      tenantId: r.tenant_id,
      restoreAt: new Date(r.restore_at).toISOString(),
      locations: r.locations,
      startedAt: new Date(r.started_at).toISOString(),
      finishedAt: new Date(r.finished_at).toISOString(),
      outcome: r.outcome,
      tables: r.tables as Record<string, Checksums>,
      message: r.message,
    }));
  }

  /** Undefined when the tenant has no snapshot yet (nothing to drill). */
  async #drillTenant(tenantId: string): Promise<DrillResult | undefined> {
    const tenant = await this.#tenants.findById(tenantId);
    if (!tenant) return undefined;
    const startedAt = this.#clock.now();
    let at = new Date(startedAt.getTime() - Math.random() * this.#restoreWindowMs);
    const tables: Record<string, Checksums> = {};
    const problems: string[] = [];
    for (const location of this.#locations) {
      try {
        tables[location.name] = await this.#restoreAt(location, tenant, at);
      } catch (error) {
        // Before the tenant's oldest snapshot: draw again inside the window the backups cover.
        const windowStart =
          isAppError(error) && error.code === backupErrors.outsideWindow.code
            ? (error.details?.windowStart as string | null)
            : undefined;
        if (windowStart === null) return undefined;
        // An instant between an in-place swap and the snapshot taken right after it, which no
        // restore can serve (by design, not a fault of the backups): drill the present instead.
        const isInSwapGap = isAppError(error) && error.code === backupErrors.acrossInPlaceRestore.code;
        if ((windowStart || isInSwapGap) && Object.keys(tables).length === 0) {
          const from = windowStart ? new Date(windowStart).getTime() : startedAt.getTime();
          at = new Date(from + Math.random() * (startedAt.getTime() - from));
          try {
            tables[location.name] = await this.#restoreAt(location, tenant, at);
            continue;
          } catch (retry) {
            problems.push(`${location.name}: ${describe(retry)}`);
            continue;
          }
        }
        problems.push(`${location.name}: ${describe(error)}`);
      }
    }
    const [first, ...others] = Object.entries(tables);
    for (const [name, sums] of others) {
      const differing = Object.keys({ ...first![1], ...sums }).filter(
        (table) => JSON.stringify(first![1][table]) !== JSON.stringify(sums[table]),
      );
      if (differing.length > 0) problems.push(`${first![0]} and ${name} differ in ${differing.join(', ')}`);
    }
    const result: DrillResult = {
      id: newId(),
      tenantId,
      restoreAt: at.toISOString(),
      locations: this.#locations.map((l) => l.name),
      startedAt: startedAt.toISOString(),
      finishedAt: this.#clock.now().toISOString(),
      outcome: problems.length === 0 ? 'passed' : 'failed',
      tables,
      message: problems.length === 0 ? null : problems.join('; '),
    };
    await this.#control()
      .insertInto('backup_drills')
      .values({
        id: result.id,
        tenant_id: tenantId,
        restore_at: result.restoreAt,
        locations: result.locations,
        started_at: result.startedAt,
        finished_at: result.finishedAt,
        outcome: result.outcome,
        tables: JSON.stringify(result.tables),
        message: result.message,
      })
      .execute();
    return result;
  }

  async #restoreAt(
    location: BackupLocation,
    tenant: NonNullable<Awaited<ReturnType<TenantRepository['findById']>>>,
    at: Date,
  ): Promise<Checksums> {
    const { inspected } = await this.#restores.drill(location, tenant, at, (trx, schema) =>
      checksumTables(trx, schema),
    );
    return inspected;
  }

  #control(): Kysely<ControlTables> {
    return this.#database.control;
  }
}

function describe(error: unknown): string {
  return isAppError(error) ? `[${error.code}] ${error.message}` : (error as Error).message;
}

function pickRandom<T>(items: readonly T[], count: number): T[] {
  const pool = [...items];
  const picked: T[] = [];
  while (picked.length < count && pool.length > 0) {
    picked.push(pool.splice(Math.floor(Math.random() * pool.length), 1)[0]!);
  }
  return picked;
}
