import { type Kysely, type Selectable, sql, type Updateable } from 'kysely';
import type { ControlTables, RestoreJobsTable } from '../../db/control-tables.ts';
import type { Database } from '../../db/database.ts';
import { newLeaseHolder, withLease } from '../../db/leases.ts';
import type { Clock } from '../../platform/clock.ts';
import { isAppError } from '../../platform/errors.ts';
import { isUuid, newId } from '../../platform/ids.ts';
import { type AccessPrincipal, authorize } from '../access/policy.ts';
import type { AuditEntry } from '../audit/audit-chain.ts';
import { tenantErrors } from '../tenants/tenant.errors.ts';
import { backupErrors } from './backup.errors.ts';
import type { BackupService } from './backup.service.ts';
import type { RestoreResult } from './restore.service.ts';

export type RestoreJobStatus = 'queued' | 'running' | 'succeeded' | 'failed';
/** Where a job is: waiting, starting, loading the snapshot, replaying the journal, copying files, snapshotting the new tenant, finished. */
export type RestoreJobPhase =
  | 'queued'
  | 'starting'
  | 'snapshot'
  | 'journal'
  | 'files'
  | 'new_snapshot'
  | 'done';

export interface RestoreJobResult {
  tenant: { id: string; slug: string | null };
  sourceTenantId: string;
  at: string;
  location: string;
  snapshotTakenAt: string;
  rowsLoaded: number;
  entriesReplayed: number;
  objectsRestored: number;
  objectsFromLiveStore: number;
  objectsUnchanged: number;
}

/** A restore's outcome as a job (and the API) records it: no tenant data, ids and counts. */
export function presentRestoreResult(result: RestoreResult): RestoreJobResult {
  return {
    tenant: { id: result.tenant.id, slug: result.tenant.slug },
    sourceTenantId: result.sourceTenantId,
    at: result.at.toISOString(),
    location: result.location,
    snapshotTakenAt: result.snapshotTakenAt.toISOString(),
    rowsLoaded: result.rowsLoaded,
    entriesReplayed: result.entriesReplayed,
    objectsRestored: result.objectsRestored,
    objectsFromLiveStore: result.objectsFromLiveStore,
    objectsUnchanged: result.objectsUnchanged,
  };
}

export interface RestoreJob {
  id: string;
  /** The tenant restored from. */
  tenantId: string;
  /** Asked for by the tenant's owner or admin, or by an operator. */
  origin: 'tenant' | 'operator';
  requestedBy: { kind: 'user' | 'staff'; id: string };
  at: Date;
  intoSlug: string;
  intoName: string | null;
  from: string | null;
  status: RestoreJobStatus;
  phase: RestoreJobPhase;
  /** Snapshot rows loaded plus journal entries read, of the total the manifests announce. */
  progress: { done: number; total: number };
  createdAt: Date;
  startedAt: Date | null;
  /** When progress was last recorded (at most once a second while it runs). */
  progressAt: Date | null;
  finishedAt: Date | null;
  /** Estimated end of the loading phases (snapshot and journal), from the rate so far; null otherwise. */
  etaAt: Date | null;
  result: RestoreJobResult | null;
  error: { code: string; message: string } | null;
}

export interface RestoreJobRequest {
  at: Date;
  intoSlug: string;
  intoName?: string | undefined;
  from?: string | undefined;
}

type Requester = {
  origin: 'tenant' | 'operator';
  kind: 'user' | 'staff';
  id: string;
  requestId?: string | null | undefined;
};

const leaseTtlMs = 60_000;
/** Progress is written at most this often (a restore reports every 2,000 rows). */
const progressEveryMs = 1_000;
/** Restores one node runs at once; more wait queued for a node with room. */
const maxRunningPerNode = 2;

const leaseName = (jobId: string) => `restore-job:${jobId}`;

/**
 * Restores requested through the API, as background jobs in `control.restore_jobs`. A request is
 * checked at once (bad or taken slug, unknown location, a time outside the window: answered with
 * their 4xx), then queued and started on the node that took it. Every node also runs `runPending`
 * every few seconds, which starts queued jobs nobody started and fails those whose node died.
 *
 * Exactly once: a job runs only under the lease `restore-job:<id>` (the same control-plane leases
 * as scheduled backups), and is claimed by moving it from queued to running inside it; the lease is
 * renewed while the job runs. A job running without a live lease was left by a node that died: it
 * is marked failed (`restore_interrupted`), not resumed. A restore is one transaction, so nothing of
 * it survives a crash and there is nothing to resume from; re-running it unasked could repeat what
 * killed the node. The requester asks again. Request and completion are both audited: the request
 * like every request, the completion as `restores.complete` by the same actor.
 */
export class RestoreJobs {
  readonly #database: Database;
  readonly #backups: BackupService;
  readonly #audit: { enqueue(entry: AuditEntry & { platform?: boolean }): void } | undefined;
  readonly #clock: Clock;
  readonly #startOnRequest: boolean;
  readonly #running = new Map<string, Promise<boolean>>();
  #stopped = false;
  onError: (error: unknown, what: string) => void;

  constructor(deps: {
    database: Database;
    backups: BackupService;
    clock: Clock;
    audit?: { enqueue(entry: AuditEntry & { platform?: boolean }): void };
    /** Start a job on the node that took the request (default); false leaves it to `runPending`. */
    startOnRequest?: boolean;
    onError?: (error: unknown, what: string) => void;
  }) {
    this.#database = deps.database;
    this.#backups = deps.backups;
    this.#clock = deps.clock;
    this.#audit = deps.audit;
    this.#startOnRequest = deps.startOnRequest ?? true;
    this.onError = deps.onError ?? (() => undefined);
  }

  /** A tenant's owner or admin (session) restores their own tenant into a new one. */
  requestOwn(
    principal: Extract<AccessPrincipal, { kind: 'user' }>,
    request: RestoreJobRequest,
    requestId?: string,
  ): Promise<RestoreJob> {
    authorize(principal, 'tenant.restore', { tenantId: principal.tenantId, isProject: false });
    return this.request(principal.tenantId, request, {
      origin: 'tenant',
      kind: 'user',
      id: principal.userId,
      requestId,
    });
  }

  /** Checks the request (its 4xx now), queues the job and, by default, starts it on this node. */
  async request(tenant: string, request: RestoreJobRequest, by: Requester): Promise<RestoreJob> {
    const source = await this.#backups.checkRestore({
      tenant,
      at: request.at,
      intoSlug: request.intoSlug,
      ...(request.intoName !== undefined ? { intoName: request.intoName } : {}),
      ...(request.from !== undefined ? { from: request.from } : {}),
    });
    const id = newId();
    try {
      await this.#control()
        .insertInto('restore_jobs')
        .values({
          id,
          tenant_id: source.id,
          origin: by.origin,
          requested_by_kind: by.kind,
          requested_by_id: by.id,
          request_id: by.requestId ?? null,
          restore_at: request.at,
          into_slug: request.intoSlug,
          into_name: request.intoName ?? null,
          from_location: request.from ?? null,
          status: 'queued',
          phase: 'queued',
          created_at: this.#clock.now(),
        })
        .execute();
    } catch (error) {
      // 23505 on the pending-slug index: another queued or running job restores into that slug.
      if ((error as { code?: string }).code === '23505') throw tenantErrors.slugTaken(request.intoSlug);
      throw error;
    }
    if (this.#startOnRequest) this.#start(id);
    return this.get(id, 'all');
  }

  /** One job: a tenant sees only the jobs it requested (others: not found, as if absent). */
  async get(id: string, scope: { tenantId: string } | 'all'): Promise<RestoreJob> {
    if (!isUuid(id)) throw backupErrors.jobNotFound();
    let query = this.#control().selectFrom('restore_jobs').selectAll().where('id', '=', id);
    if (scope !== 'all') query = query.where('tenant_id', '=', scope.tenantId).where('origin', '=', 'tenant');
    const row = await query.executeTakeFirst();
    if (!row) throw backupErrors.jobNotFound();
    return this.#present(row);
  }

  /** Newest first: a tenant's own requests, or (staff) every job, optionally of one tenant. */
  async list(
    scope: { tenantId: string } | { all: true; tenantId?: string },
    limit = 50,
  ): Promise<RestoreJob[]> {
    let query = this.#control().selectFrom('restore_jobs').selectAll();
    if (!('all' in scope)) query = query.where('origin', '=', 'tenant');
    if (scope.tenantId !== undefined) query = query.where('tenant_id', '=', scope.tenantId);
    const rows = await query.orderBy('created_at', 'desc').orderBy('id').limit(limit).execute();
    return rows.map((row) => this.#present(row));
  }

  /**
   * One round of every node's background work: fail the jobs whose node died (running, lease
   * gone), then start queued jobs, oldest first, while this node has room. Returns when the jobs it
   * started have finished.
   */
  async runPending(): Promise<{ interrupted: number; ran: number }> {
    const interrupted = await this.failInterrupted();
    if (this.#stopped) return { interrupted, ran: 0 };
    const queued = await this.#control()
      .selectFrom('restore_jobs')
      .select('id')
      .where('status', '=', 'queued')
      .orderBy('created_at')
      .limit(20)
      .execute();
    const runs: Promise<boolean>[] = [];
    for (const { id } of queued) {
      if (this.#running.size >= maxRunningPerNode) break;
      const run = this.#start(id);
      if (run) runs.push(run);
    }
    const ran = (await Promise.all(runs)).filter(Boolean).length;
    return { interrupted, ran };
  }

  /** Marks failed every running job whose lease is gone (its node died); returns how many. */
  async failInterrupted(): Promise<number> {
    const now = this.#clock.now();
    const error = backupErrors.interrupted();
    const failed = await this.#control()
      .updateTable('restore_jobs')
      .set({
        status: 'failed',
        finished_at: now,
        error_code: error.code,
        error_message: error.message,
      })
      .where('status', '=', 'running')
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('leases')
              .select('leases.name')
              .whereRef('leases.name', '=', sql<string>`'restore-job:' || restore_jobs.id::text`)
              .where('leases.expires_at', '>', sql<Date>`now()`),
          ),
        ),
      )
      .returningAll()
      .execute();
    for (const row of failed) this.#auditCompletion(row, error.code);
    return failed.length;
  }

  /** Waits for the jobs this node runs; starts no more. (Shutdown: a job cut off is failed by another node.) */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.settled();
  }

  /** Resolves once the jobs this node runs now have finished (their completion audited too). */
  async settled(): Promise<void> {
    await Promise.all(this.#running.values());
  }

  /**
   * Starts a job on this node unless it is full or stopping; the lease and the claim decide who
   * runs it. Settles to whether this node ran it.
   */
  #start(id: string): Promise<boolean> | undefined {
    if (this.#stopped || this.#running.size >= maxRunningPerNode || this.#running.has(id)) return undefined;
    const run = this.#run(id)
      .catch((error: unknown) => {
        this.onError(error, `restore job ${id} could not be run`);
        return false;
      })
      .finally(() => this.#running.delete(id));
    this.#running.set(id, run);
    return run;
  }

  async #run(id: string): Promise<boolean> {
    const holder = newLeaseHolder();
    const outcome = await withLease(this.#control(), leaseName(id), holder, leaseTtlMs, async () => {
      const now = this.#clock.now();
      // The claim: only one node moves the job from queued to running.
      const job = await this.#control()
        .updateTable('restore_jobs')
        .set({ status: 'running', phase: 'starting', holder, started_at: now, progress_at: now })
        .where('id', '=', id)
        .where('status', '=', 'queued')
        .returningAll()
        .executeTakeFirst();
      if (!job) return false;
      let lastWrite = 0;
      let lastPhase: RestoreJobPhase = 'starting';
      let writing: Promise<unknown> = Promise.resolve();
      const onProgress = (done: number, total: number, label: string) => {
        const phase = phaseOf(label);
        const at = Date.now();
        // A new phase is written at once; progress within one at most once a second.
        if (phase === lastPhase && at - lastWrite < progressEveryMs) return;
        lastWrite = at;
        lastPhase = phase;
        writing = writing.then(() =>
          this.#control()
            .updateTable('restore_jobs')
            .set({ phase, progress_done: done, progress_total: total, progress_at: this.#clock.now() })
            .where('id', '=', id)
            .where('holder', '=', holder)
            .where('status', '=', 'running')
            .execute()
            .catch((error: unknown) => this.onError(error, `restore job ${id}: progress not recorded`)),
        );
      };
      let finished: Pick<
        Updateable<RestoreJobsTable>,
        'status' | 'phase' | 'error_code' | 'error_message'
      > & {
        result?: RestoreJobResult;
      };
      try {
        const result = await this.#backups.restore({
          tenant: job.tenant_id,
          at: new Date(job.restore_at),
          intoSlug: job.into_slug,
          ...(job.into_name !== null ? { intoName: job.into_name } : {}),
          ...(job.from_location !== null ? { from: job.from_location } : {}),
          onProgress,
        });
        finished = { status: 'succeeded', phase: 'done', result: presentRestoreResult(result) };
      } catch (error) {
        if (isAppError(error) && error.code === backupErrors.inProgress.code) {
          // Another restore of the same tenant runs (the CLI, or a job on another node): wait for it.
          await writing;
          await this.#control()
            .updateTable('restore_jobs')
            .set({ status: 'queued', phase: 'queued', holder: null, started_at: null, progress_at: null })
            .where('id', '=', id)
            .where('holder', '=', holder)
            .execute();
          return false;
        }
        if (!isAppError(error)) this.onError(error, `restore job ${id} failed`);
        finished = {
          status: 'failed',
          error_code: isAppError(error) ? error.code : 'internal_error',
          // An unexpected error's text may name internals: the job says only that it failed.
          error_message: isAppError(error)
            ? error.message
            : 'the restore failed unexpectedly; see the server log',
        };
      }
      await writing;
      const row = await this.#control()
        .updateTable('restore_jobs')
        .set({
          ...finished,
          result: finished.result === undefined ? null : JSON.stringify(finished.result),
          finished_at: this.#clock.now(),
        })
        .where('id', '=', id)
        .where('holder', '=', holder)
        .returningAll()
        .executeTakeFirst();
      if (row) this.#auditCompletion(row, row.error_code);
      return true;
    });
    // Held by another node: it runs (or ran) the job.
    return 'value' in outcome && outcome.value;
  }

  /** The completion, by the requester, on the tenant's chain (tenant requests) or the platform's (staff). */
  #auditCompletion(row: Selectable<RestoreJobsTable>, errorCode: string | null): void {
    this.#audit?.enqueue({
      at: this.#clock.now(),
      tenantId: row.tenant_id,
      platform: row.origin === 'operator',
      actorKind: row.requested_by_kind,
      actorId: row.requested_by_id,
      apiKeyId: null,
      grantId: null,
      action: 'restores.complete',
      resourceType: 'restores',
      resourceId: row.id,
      outcome: errorCode === null ? 'allow' : 'error',
      statusCode: null,
      errorCode,
      requestId: row.request_id,
      ip: null,
      userAgent: null,
      changes: null,
    });
  }

  #present(row: Selectable<RestoreJobsTable>): RestoreJob {
    const done = Number(row.progress_done);
    const total = Number(row.progress_total);
    const startedAt = row.started_at ? new Date(row.started_at) : null;
    const progressAt = row.progress_at ? new Date(row.progress_at) : null;
    const phase = row.phase as RestoreJobPhase;
    let etaAt: Date | null = null;
    if (
      row.status === 'running' &&
      (phase === 'snapshot' || phase === 'journal') &&
      startedAt &&
      progressAt &&
      done > 0 &&
      total >= done
    ) {
      const elapsed = progressAt.getTime() - startedAt.getTime();
      etaAt = new Date(progressAt.getTime() + ((total - done) * elapsed) / done);
    }
    return {
      id: row.id,
      tenantId: row.tenant_id,
      origin: row.origin,
      requestedBy: { kind: row.requested_by_kind, id: row.requested_by_id },
      at: new Date(row.restore_at),
      intoSlug: row.into_slug,
      intoName: row.into_name,
      from: row.from_location,
      status: row.status,
      phase,
      progress: { done, total },
      createdAt: new Date(row.created_at),
      startedAt,
      progressAt,
      finishedAt: row.finished_at ? new Date(row.finished_at) : null,
      etaAt,
      result: (row.result as RestoreJobResult | null) ?? null,
      error:
        row.error_code === null
          ? null
          : { code: row.error_code, message: row.error_message ?? row.error_code },
    };
  }

  #control(): Kysely<ControlTables> {
    return this.#database.control;
  }
}

/** The phase a restore's progress label names (restore.service.ts, backup.service.ts). */
function phaseOf(label: string): RestoreJobPhase {
  if (label.startsWith('journal')) return 'journal';
  if (label.startsWith('attachment')) return 'files';
  if (label.startsWith('first snapshot')) return 'new_snapshot';
  return 'snapshot';
}
