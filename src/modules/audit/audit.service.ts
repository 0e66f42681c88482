import type { Database } from '../../db/database.ts';
import { controlSchema, tenantSchemaName } from '../../db/tenant-schema.ts';
import type { TenantScope, WithTenant } from '../../db/with-tenant.ts';
import { type Clock, systemClock } from '../../platform/clock.ts';
import { isAppError } from '../../platform/errors.ts';
import type { ObjectStore } from '../../ports/object-store.port.ts';
import { type AccessPrincipal, authorize } from '../access/policy.ts';
import { auditErrors } from './audit.errors.ts';
import {
  type AuditFilters,
  auditRepository,
  type ChainHandle,
  type StoredCheckpoint,
} from './audit.repository.ts';
import {
  type AuditEntry,
  type ChainedAuditEntry,
  chainAuditEntries,
  checkEntryHashes,
  genesisHash,
} from './audit-chain.ts';
import { type AuditRequestContext, currentAuditContext } from './audit-context.ts';
import { defaultVerifyThreads, openEntryHashChecker } from './audit-hash-pool.ts';
import { type AuditSigner, checkpointMessage } from './audit-signer.ts';
import type { RecordPage } from './audit-stored-row.ts';

/** The kinds of damage `verify` names; the first bad position comes with one of them. */
export type TamperClass =
  | 'modified'
  | 'deleted'
  | 'inserted'
  | 'reordered'
  | 'truncated'
  | 'rolled_back'
  | 'checkpoint_invalid';

export interface AuditVerification {
  ok: boolean;
  /** null: the platform chain. */
  tenantId: string | null;
  /** Entries read and checked. */
  entries: number;
  head: { position: number; hash: string } | null;
  /** The first entry kept; above 1 when older entries were pruned (after a sealed checkpoint). */
  firstPosition: number | null;
  checkpoints: { database: number; objectStore: number; latestPosition: number | null };
  problem?: { position: number; class: TamperClass; message: string };
}

export interface AuditServiceOptions {
  database: Database;
  /** The plain withTenant (not the auditing wrapper), for the batch writer and reads. */
  withTenant: WithTenant;
  /** Finds a live tenant by slug, for sign-in attempts that name one. */
  tenants: { findLiveBySlug(slug: string): Promise<{ id: string } | undefined> };
  objects: ObjectStore;
  signer: AuditSigner;
  clock?: Clock;
  /** A checkpoint at least every this many entries (STRONGROOM_AUDIT_CHECKPOINT_ENTRIES). */
  checkpointEveryEntries?: number;
  /** …and at least this often while entries arrive (STRONGROOM_AUDIT_CHECKPOINT_INTERVAL_MS). */
  checkpointIntervalMs?: number;
  /** Default retention (STRONGROOM_AUDIT_RETENTION_DAYS); a tenant may set its own. Default 365. */
  retentionDays?: number;
  /** Retention is never shorter than this (the restore window, STRONGROOM_RESTORE_WINDOW_DAYS). */
  minRetentionDays?: number;
  /** How long a read's entry may wait in memory before it is written (at most 1 s). */
  flushIntervalMs?: number;
  /**
   * False only in the bench, to measure what auditing costs: no entry is written at all. No
   * configuration turns it off.
   */
  enabled?: boolean;
  /**
   * How verify reads and checks a chain: positions per page (default 10,000) and worker threads
   * that recompute entry hashes (default one per core, 1 to 4; 0: on the calling thread).
   */
  verify?: { pageSize?: number; threads?: number };
  /** Entries per page an export reads (default 2,000): what it holds at most is two pages. */
  exportPageSize?: number;
  /** Where background failures go (the batch writer, checkpointing); never thrown at a request. */
  onError?: (error: unknown, what: string) => void;
}

/** What the walk of `verify` looks at in each entry (its own hash is checked before, per page). */
type ChainLinks = { position: number; prevHash: string; hash: string };

/** An entry waiting for the batch writer, and which chain it belongs to. */
type QueuedEntry = AuditEntry & { tenantSlug?: string | null; platform?: boolean };

/** How often verify reports progress, in entries. */
const verifyProgressEvery = 10_000;
/** Entries waiting in memory beyond this are dropped (and reported) rather than exhaust the heap. */
const maxPendingEntries = 100_000;
export const maxAuditPageSize = 500;

/** Pending write entries chained per statement round, so one seal's memory stays bounded. */
const sealBatchEntries = 1_000;

/**
 * The audit log: a hash chain per tenant (and one for the platform), sealed by signed checkpoints
 * that are also copied to the object store. Writes append their entry in their own transaction (see
 * `auditWrites`); everything else (reads, refusals, errors) goes through a batch writer that commits
 * within `flushIntervalMs`.
 */
export class AuditService {
  readonly #database: Database;
  readonly #withTenant: WithTenant;
  readonly #tenants: AuditServiceOptions['tenants'];
  readonly #objects: ObjectStore;
  readonly #signer: AuditSigner;
  readonly #clock: Clock;
  readonly #checkpointEvery: number;
  readonly #checkpointIntervalMs: number;
  readonly #flushIntervalMs: number;
  readonly #retentionDays: number;
  readonly #minRetentionDays: number;
  readonly #onError: (error: unknown, what: string) => void;
  readonly #enabled: boolean;
  readonly #verify: { pageSize: number; threads: number };
  readonly #exportPageSize: number;
  /** Keyed by tenant id, '' for the platform chain. */
  #pending = new Map<string, QueuedEntry[]>();
  #pendingCount = 0;
  /** Tenants this node wrote pending entries for since its last flush. */
  #unsealed = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  constructor(options: AuditServiceOptions) {
    this.#database = options.database;
    this.#withTenant = options.withTenant;
    this.#tenants = options.tenants;
    this.#objects = options.objects;
    this.#signer = options.signer;
    this.#clock = options.clock ?? systemClock;
    this.#checkpointEvery = options.checkpointEveryEntries ?? 1_000;
    this.#checkpointIntervalMs = options.checkpointIntervalMs ?? 10 * 60_000;
    this.#flushIntervalMs = Math.min(options.flushIntervalMs ?? 250, 1_000);
    this.#minRetentionDays = options.minRetentionDays ?? 7;
    this.#enabled = options.enabled ?? true;
    this.#retentionDays = Math.max(options.retentionDays ?? 365, this.#minRetentionDays);
    this.#onError = options.onError ?? (() => undefined);
    this.#exportPageSize = Math.max(1, options.exportPageSize ?? 2_000);
    this.#verify = {
      pageSize: Math.max(1, options.verify?.pageSize ?? 10_000),
      threads: Math.max(0, options.verify?.threads ?? defaultVerifyThreads()),
    };
  }

  get signingKey(): { keyId: string; publicKeyPem: string } {
    return { keyId: this.#signer.keyId, publicKeyPem: this.#signer.publicKeyPem };
  }

  /**
   * Wraps withTenant so that a write transaction run while serving a request appends that request's
   * entry before it commits: no acknowledged change without its entry. Only a transaction that
   * really wrote (Postgres assigned it a transaction id) gets one, so a lookup in a read-write
   * transaction that then fails is audited by the response hook with its real outcome instead.
   */
  auditWrites(inner: WithTenant): WithTenant {
    if (!this.#enabled) return inner;
    return async (tenantId, fn, options) => {
      const context = currentAuditContext();
      // Staff requests are audited on the platform chain, by the response hook.
      if (!context || context.audited || context.platform || options?.readOnly)
        return inner(tenantId, fn, options);
      if (options?.finalStatement)
        throw new Error('a write in a request cannot bring its own final statement');
      let appended = false;
      const result = await inner(tenantId, fn, {
        ...options,
        // Committed with the write, in the commit's own message, without waiting for the chain's
        // lock: the batch writer chains it within `flushIntervalMs` (sealPending).
        finalStatement: (scope) => ({
          text: auditRepository.insertPendingIfWroteStatement(
            scope,
            entryOf(context, this.#clock.now(), scope.tenantId, 'allow', null, null),
          ),
          onRows: (rows) => {
            appended = rows.length > 0;
          },
        }),
      });
      // Committed: this request's entry is in (pending, until this node's next flush chains it).
      if (appended) {
        context.audited = true;
        this.#unsealed.add(tenantId!);
      }
      return result;
    };
  }

  /**
   * Chains the tenant's pending write entries (in the order they were written), then `entries`, in
   * one transaction under the chain's lock, and removes what it chained from the pending table. The
   * batch writer calls this for the tenants this node wrote to; the checkpoint job for every tenant
   * (what a crashed node left pending).
   */
  async sealPending(tenantId: string): Promise<number> {
    return this.#withTenant(tenantId, async (scope) => (await this.#seal(scope, [])).length);
  }

  async #seal(scope: TenantScope, entries: readonly AuditEntry[]): Promise<ChainedAuditEntry[]> {
    const chain: ChainHandle = { db: scope.db, tenantId: scope.tenantId };
    await auditRepository.lockChain(chain);
    const chained: ChainedAuditEntry[] = [];
    for (;;) {
      const pending = await auditRepository.pending(scope, sealBatchEntries);
      if (pending.length === 0) break;
      chained.push(
        ...(await this.append(
          scope,
          pending.map((row) => row.entry),
        )),
      );
      await auditRepository.deletePending(
        scope,
        pending.map((row) => row.id),
      );
      if (pending.length < sealBatchEntries) break;
    }
    chained.push(...(await this.append(scope, entries)));
    return chained;
  }

  /** Appends entries to the tenant's chain inside the caller's transaction (they commit with it). */
  async append(scope: TenantScope, entries: readonly AuditEntry[]): Promise<ChainedAuditEntry[]> {
    const chain: ChainHandle = { db: scope.db, tenantId: scope.tenantId };
    const chained = await appendToChain(
      chain,
      entries.map((entry) => ({ ...entry, tenantId: scope.tenantId })),
    );
    this.#checkpointIfDue(scope.tenantId, chained);
    return chained;
  }

  /** The entry of a request no write transaction audited (reads, refusals, errors); batched. */
  recordRequest(context: AuditRequestContext, statusCode: number, errorCode: string | null): void {
    if (context.audited || !this.#enabled) return;
    context.audited = true;
    // Refused (unauthenticated, forbidden, not visible, throttled or locked out) is a denial; any
    // other failure an error.
    const outcome = statusCode < 400 ? 'allow' : [401, 403, 404, 429].includes(statusCode) ? 'deny' : 'error';
    this.enqueue({
      ...entryOf(context, this.#clock.now(), context.tenantId, outcome, statusCode, errorCode),
      tenantSlug: context.tenantSlug,
      platform: context.platform,
    });
  }

  /** Queues an entry for the batch writer: durable within `flushIntervalMs` (lost if the process dies first). */
  enqueue(entry: QueuedEntry): void {
    if (this.#pendingCount >= maxPendingEntries) {
      this.#onError(new Error('audit queue full'), 'audit entry dropped');
      return;
    }
    const key = entry.platform || !entry.tenantId ? '' : entry.tenantId;
    const list = this.#pending.get(key) ?? [];
    list.push(entry);
    this.#pending.set(key, list);
    this.#pendingCount++;
  }

  /** Starts the batch writer's timer (the server does; tests call `flush`). */
  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), this.#flushIntervalMs);
    this.#timer.unref();
  }

  /** Stops the timer and writes what is queued. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }

  /** Writes every queued entry, one transaction per chain; a chain that fails keeps its entries. */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    if (this.#pendingCount === 0 && this.#unsealed.size === 0) return;
    this.#flushing = this.#flushOnce().finally(() => {
      this.#flushing = undefined;
    });
    await this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    const batches = this.#pending;
    this.#pending = new Map();
    this.#pendingCount = 0;
    const unsealed = this.#unsealed;
    this.#unsealed = new Set();
    for (const tenantId of unsealed) if (!batches.has(tenantId)) batches.set(tenantId, []);
    for (const [key, entries] of batches) {
      if (key !== '') {
        const sealed = await this.#writeOrRequeue(entries, () =>
          this.#withTenant(key, (scope) => this.#seal(scope, entries)),
        );
        // What this node wrote pending is sealed by the next flush (or the checkpoint job).
        if (!sealed) this.#unsealed.add(key);
        continue;
      }
      // No tenant yet: a sign-in naming a tenant slug goes to that tenant's chain, the rest
      // (unknown tenants, unauthenticated calls) to the platform chain. Each chain commits on its
      // own, so only what one of them failed to write is queued again (never a committed entry).
      const byTenant = new Map<string, AuditEntry[]>();
      const platform: QueuedEntry[] = [];
      const resolved = await this.#writeOrRequeue(entries, async () => {
        for (const queued of entries) {
          const { tenantSlug, platform: isPlatform, ...entry } = queued;
          const tenant =
            tenantSlug && !isPlatform && !entry.tenantId
              ? await this.#tenants.findLiveBySlug(tenantSlug)
              : undefined;
          if (tenant)
            byTenant.set(tenant.id, [...(byTenant.get(tenant.id) ?? []), { ...entry, tenantId: tenant.id }]);
          else platform.push(queued);
        }
      });
      if (!resolved) continue;
      for (const [tenantId, list] of byTenant)
        await this.#writeOrRequeue(list, () =>
          this.#withTenant(tenantId, (scope) => this.append(scope, list)),
        );
      if (platform.length > 0)
        await this.#writeOrRequeue(platform, () =>
          this.appendPlatform(platform.map(({ tenantSlug: _, platform: __, ...entry }) => entry)),
        );
    }
  }

  /**
   * Runs one chain's write; if it fails, queues its entries again for the next flush (an entry with
   * a tenant id, under that tenant). A tenant that is gone takes its entries with it. False when the
   * write failed.
   */
  async #writeOrRequeue(entries: readonly QueuedEntry[], write: () => Promise<unknown>): Promise<boolean> {
    try {
      await write();
      return true;
    } catch (error) {
      if (isAppError(error) && error.code === 'tenant_not_found') return true;
      this.#onError(error, 'audit batch not written; retrying');
      for (const entry of entries) this.enqueue(entry);
      return false;
    }
  }

  /** Appends to the platform chain (`control.audit_log`) in a transaction of its own. */
  async appendPlatform(entries: readonly AuditEntry[]): Promise<ChainedAuditEntry[]> {
    const chained = await this.#database.db
      .transaction()
      .execute((trx) => appendToChain({ db: trx.withSchema(controlSchema), tenantId: null }, entries));
    this.#checkpointIfDue(null, chained);
    return chained;
  }

  #checkpointIfDue(tenantId: string | null, chained: readonly ChainedAuditEntry[]): void {
    const first = chained[0]?.position;
    const last = chained.at(-1)?.position;
    if (first === undefined || last === undefined) return;
    // Crossing a multiple of N: seal after this transaction commits (a moment later, off the request).
    if (Math.floor((first - 1) / this.#checkpointEvery) === Math.floor(last / this.#checkpointEvery)) return;
    setTimeout(() => {
      this.checkpoint(tenantId).catch((error) => this.#onError(error, 'audit checkpoint failed'));
    }, 50).unref();
  }

  /** Runs `fn` on a chain: a tenant's (read-only or not) or the platform's. */
  #onChain<T>(tenantId: string | null, fn: (chain: ChainHandle) => Promise<T>, readOnly = false): Promise<T> {
    if (tenantId === null)
      return this.#database.db
        .transaction()
        .execute((trx) => fn({ db: trx.withSchema(controlSchema), tenantId: null }));
    return this.#withTenant(tenantId, (scope) => fn({ db: scope.db, tenantId }), { readOnly });
  }

  /**
   * Seals the chain's head with a signed checkpoint when due (N entries or the interval since the
   * last one, or `force`): first copied to the object store, then recorded in the database, so a
   * checkpoint the database knows always has its copy outside it.
   */
  async checkpoint(
    tenantId: string | null,
    options: { force?: boolean } = {},
  ): Promise<StoredCheckpoint | undefined> {
    const { head, latest } = await this.#onChain(
      tenantId,
      async (chain) => ({
        head: await auditRepository.head(chain),
        latest: await auditRepository.latestCheckpoint(chain),
      }),
      true,
    );
    if (head.position === 0 || head.position === latest?.position) return undefined;
    const now = this.#clock.now();
    const due =
      options.force ||
      !latest ||
      head.position - latest.position >= this.#checkpointEvery ||
      now.getTime() - latest.at.getTime() >= this.#checkpointIntervalMs;
    if (!due) return undefined;
    const claim = { tenantId, position: head.position, headHash: head.hash, at: now };
    const checkpoint: StoredCheckpoint = {
      position: head.position,
      headHash: head.hash,
      at: now,
      keyId: this.#signer.keyId,
      signature: this.#signer.sign(checkpointMessage(claim)),
    };
    const body = JSON.stringify({ version: 1, tenantId, ...checkpoint, at: now.toISOString() });
    await this.#objects.put(checkpointKey(tenantId, head.position), Buffer.from(body), {
      contentType: 'application/json',
    });
    await this.#onChain(tenantId, (chain) => auditRepository.insertCheckpoint(chain, checkpoint));
    return checkpoint;
  }

  /** Sets a tenant's audit retention; never shorter than the restore window, at most 10 years. */
  async setRetentionDays(tenantId: string, days: number): Promise<void> {
    if (!Number.isInteger(days) || days < this.#minRetentionDays || days > 3650)
      throw auditErrors.retentionTooShort(this.#minRetentionDays);
    await this.#withTenant(tenantId, (scope) => auditRepository.writeRetentionDays(scope.db, days));
  }

  /**
   * Deletes the tenant's entries older than its retention, by whole sealed segments: up to the
   * newest checkpoint made before the cutoff, never the head. What stays verifies from that
   * checkpoint on (its signed head hash is the first kept entry's predecessor).
   */
  async prune(
    tenantId: string,
    now: Date = this.#clock.now(),
  ): Promise<{ prunedThrough: number; deleted: number } | undefined> {
    const { boundary } = await this.#withTenant(
      tenantId,
      async (scope) => {
        const chain = { db: scope.db, tenantId };
        const days = Math.max(
          (await auditRepository.retentionDays(scope.db)) ?? this.#retentionDays,
          this.#minRetentionDays,
        );
        return {
          boundary: await auditRepository.pruneBoundary(chain, new Date(now.getTime() - days * 86_400_000)),
        };
      },
      { readOnly: true },
    );
    if (!boundary) return undefined;
    const schema = tenantSchemaName(tenantId);
    const deleted = await this.#database.db
      .transaction()
      .execute((trx) =>
        auditRepository.pruneThrough({ db: trx.withSchema(schema), tenantId }, boundary.position),
      );
    return { prunedThrough: boundary.position, deleted };
  }

  /**
   * Recomputes the chain from its first retained entry and checks it against every checkpoint, in
   * the database and in the object store. The copies outside the database are what catch a chain
   * cut short (truncated) or put back to an older, internally valid state (rolled back).
   */
  async verify(
    tenantId: string | null,
    onProgress?: (done: number, total: number) => void,
  ): Promise<AuditVerification> {
    // The copies outside the database first: each was written after its entries committed, so the
    // head read next covers every one of them (entries appended meanwhile are left for next time).
    const storeCheckpoints = await this.#readStoredCheckpoints(tenantId);
    const { dbCheckpoints, head, first } = await this.#onChain(
      tenantId,
      async (chain) => ({
        dbCheckpoints: await auditRepository.checkpoints(chain),
        head: await auditRepository.head(chain),
        first: await auditRepository.nextPosition(chain, 0),
      }),
      true,
    );
    const problems: Array<{ position: number; class: TamperClass; message: string }> = [];
    const claims = new Map<number, Array<StoredCheckpoint & { source: 'database' | 'object store' }>>();
    for (const [source, list] of [
      ['database', dbCheckpoints],
      ['object store', storeCheckpoints],
    ] as const) {
      for (const checkpoint of list) {
        const message = checkpointMessage({
          tenantId,
          position: checkpoint.position,
          headHash: checkpoint.headHash,
          at: checkpoint.at,
        });
        if (!this.#signer.verify(message, checkpoint.signature, checkpoint.keyId)) {
          problems.push({
            position: checkpoint.position,
            class: 'checkpoint_invalid',
            message: `checkpoint at ${checkpoint.position} in the ${source} has no valid signature`,
          });
          continue;
        }
        claims.set(checkpoint.position, [
          ...(claims.get(checkpoint.position) ?? []),
          { ...checkpoint, source },
        ]);
      }
    }

    // Walk the chain with one entry of look-ahead, which tells the kinds of damage apart. Each
    // entry's own hash is recomputed a page at a time ahead of the walk (`consistent`); the walk
    // itself only compares positions and links.
    let expectedPosition: number | undefined;
    let expectedPrevHash = genesisHash;
    let count = 0;
    let lastGood: { position: number; hash: string } | null = null;
    let firstPosition: number | null = null;
    /** The chain's hash at each claimed (checkpointed) position reached. */
    const hashAt = new Map<number, string>();
    let previous: ChainLinks | undefined;
    let held: { entry: ChainLinks; consistent: boolean } | undefined;
    /** Checks `entry` (with `following` after it); false once the walk must stop. */
    const step = (entry: ChainLinks, consistent: boolean, following: ChainLinks | undefined) => {
      if (expectedPosition === undefined) {
        firstPosition = entry.position;
        // The first retained entry: position 1, or right after a pruned segment's checkpoint.
        expectedPosition = entry.position === 1 ? 1 : entry.position;
        if (entry.position !== 1) {
          const boundary = claims.get(entry.position - 1)?.[0];
          if (!boundary) {
            problems.push({
              position: 1,
              class: 'deleted',
              message: `the chain starts at ${entry.position}, with no checkpoint sealing what came before`,
            });
            return false;
          }
          expectedPrevHash = boundary.headHash;
          hashAt.set(boundary.position, boundary.headHash);
        }
      }
      const problem = classify(entry, consistent, expectedPosition, expectedPrevHash, previous, following);
      if (problem) {
        problems.push(problem);
        return false;
      }
      if (claims.has(entry.position)) hashAt.set(entry.position, entry.hash);
      expectedPrevHash = entry.hash;
      expectedPosition++;
      count++;
      if (count % verifyProgressEvery === 0) onProgress?.(count, head.position);
      previous = entry;
      return true;
    };
    let stopped = false;
    walk: for await (const { entries, consistent } of this.#scanStored(tenantId, first, head.position)) {
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]!;
        if (held && !step(held.entry, held.consistent, entry)) {
          stopped = true;
          break walk;
        }
        held = { entry, consistent: consistent[i] === 1 };
      }
    }
    if (held && !stopped) step(held.entry, held.consistent, undefined);
    if (previous) lastGood = { position: previous.position, hash: previous.hash };
    onProgress?.(count, Math.max(count, head.position));

    const chainIntact = problems.every((p) => p.class === 'checkpoint_invalid');
    const reached = lastGood?.position ?? 0;
    let lastMatching = 0;
    const entryProblem = problems.find((p) => p.class !== 'checkpoint_invalid');
    for (const position of [...claims.keys()].sort((a, b) => a - b)) {
      // Damage found in the entries already explains any checkpoint after it.
      if (entryProblem && position >= entryProblem.position) break;
      const list = claims.get(position) ?? [];
      const inDatabase = list.some((c) => c.source === 'database');
      if (position > reached) {
        if (!chainIntact) continue;
        // Sealed entries are gone. If the database still knows the checkpoint, the tail was cut;
        // if only the copy outside it does, the database was put back to an older state.
        problems.push({
          position: reached + 1,
          class: inDatabase ? 'truncated' : 'rolled_back',
          message: inDatabase
            ? `entries from ${reached + 1} on are missing, but a checkpoint seals position ${position}`
            : `the database ends at ${reached}, but the object store holds a checkpoint at ${position}: rolled back to an older state`,
        });
        break;
      }
      const actual = hashAt.get(position);
      if (actual === undefined) continue; // before the retained part (pruned)
      for (const claim of list) {
        if (claim.headHash === actual) continue;
        problems.push({
          position: lastMatching + 1,
          class: inDatabase ? 'modified' : 'rolled_back',
          message: `entries after ${lastMatching} were rewritten: the chain's hash at ${position} does not match the checkpoint in the ${claim.source}`,
        });
      }
      lastMatching = position;
    }
    problems.sort((a, b) => a.position - b.position);
    const positions = [...claims.keys()];
    return {
      ok: problems.length === 0,
      tenantId,
      entries: count,
      head: head.position === 0 ? null : head,
      firstPosition,
      checkpoints: {
        database: dbCheckpoints.length,
        objectStore: storeCheckpoints.length,
        latestPosition: positions.length > 0 ? Math.max(...positions) : null,
      },
      ...(problems[0] ? { problem: problems[0] } : {}),
    };
  }

  /**
   * The chain from `first` through `through` in pages of `verify.pageSize` positions, each with the
   * result of recomputing every entry's own hash (1: matches its stored hash), on worker threads
   * when there is more than one page. Pages are read ahead (on a Postgres server, on several
   * connections at once) and checked as they arrive, while the walk goes through earlier ones.
   */
  async *#scanStored(
    tenantId: string | null,
    first: number | undefined,
    through: number,
  ): AsyncGenerator<{ entries: ChainLinks[]; consistent: Uint8Array }> {
    if (first === undefined) return;
    const { pageSize } = this.#verify;
    const threads = through - first >= pageSize ? this.#verify.threads : 0;
    const checker = openEntryHashChecker(threads);
    const readPage = async (after: number) => {
      const rows = await this.#onChain(
        tenantId,
        (chain) => auditRepository.recordRange(chain, after, after + pageSize),
        true,
      );
      const page: RecordPage = { tenantId, prevHashes: [], hashes: [], records: [] };
      for (const row of rows) {
        page.prevHashes.push(row.prevHash);
        page.hashes.push(row.hash);
        page.records.push(row.record);
      }
      const consistent = await checker.check(page);
      // Not a verdict yet: any entry whose record did not check out is judged from plain columns.
      if (consistent.includes(0)) {
        const entries = await this.#onChain(
          tenantId,
          (chain) => auditRepository.storedRange(chain, after, after + pageSize),
          true,
        );
        return { entries, consistent: checkEntryHashes(entries) };
      }
      return { entries: rows, consistent };
    };
    const ahead: Array<{
      after: number;
      page: Promise<{ entries: ChainLinks[]; consistent: Uint8Array }>;
    }> = [];
    let next = first - 1;
    const fill = () => {
      while (ahead.length < 2 + threads && next < through) {
        const page = readPage(next);
        // Awaited below in order; a page abandoned when the walk stops early must not go unhandled.
        page.catch(() => undefined);
        ahead.push({ after: next, page });
        next += pageSize;
      }
    };
    try {
      fill();
      while (ahead.length > 0) {
        const { after, page } = ahead.shift()!;
        const checked = await page;
        if (checked.entries.length === 0) {
          // A gap of a whole page (deleted entries): go on from the next entry that exists.
          const skipTo = await this.#onChain(
            tenantId,
            (chain) => auditRepository.nextPosition(chain, after),
            true,
          );
          if (skipTo === undefined || skipTo > through) return;
          if (skipTo > next) {
            ahead.length = 0;
            next = skipTo - 1;
          }
          fill();
          continue;
        }
        fill();
        yield checked;
      }
    } finally {
      await checker.close();
    }
  }

  async #readStoredCheckpoints(tenantId: string | null): Promise<StoredCheckpoint[]> {
    const found: StoredCheckpoint[] = [];
    for await (const object of this.#objects.list(`${checkpointPrefix(tenantId)}`)) {
      const stream = await this.#objects.get(object.key);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
      try {
        const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        found.push({
          position: Number(parsed.position),
          headHash: String(parsed.headHash),
          at: new Date(String(parsed.at)),
          keyId: String(parsed.keyId),
          signature: String(parsed.signature),
        });
      } catch {
        // Unreadable: counted as a checkpoint whose signature cannot verify.
        found.push({ position: 0, headHash: '', at: new Date(0), keyId: '', signature: '' });
      }
    }
    return found.sort((a, b) => a.position - b.position);
  }

  /** A page of the tenant's log, newest first; account owners and admins only. */
  async search(
    principal: AccessPrincipal & { kind: 'user' },
    query: AuditFilters & { beforePosition?: number | undefined; limit: number },
  ): Promise<{ items: ChainedAuditEntry[]; nextBefore: number | null }> {
    // Tenant-wide: the one policy decides (audit.read is an owner/admin action).
    authorize(principal, 'audit.read', { tenantId: principal.tenantId, isProject: false });
    const limit = Math.min(Math.max(query.limit, 1), maxAuditPageSize);
    const items = await this.#withTenant(
      principal.tenantId,
      (scope) =>
        auditRepository.search(
          { db: scope.db, tenantId: scope.tenantId },
          { ...query, order: 'newest', limit: limit + 1 },
        ),
      { readOnly: true },
    );
    const more = items.length > limit;
    const page = more ? items.slice(0, limit) : items;
    return { items: page, nextBefore: more ? (page.at(-1)?.position ?? null) : null };
  }

  /** What a support grant did in its tenant (for the summary its tenant gets when it ends). */
  async grantActivity(
    tenantId: string,
    grantId: string,
  ): Promise<Array<{ action: string; outcome: string; count: number }>> {
    await this.flush();
    return this.#withTenant(
      tenantId,
      (scope) => auditRepository.grantActivity({ db: scope.db, tenantId: scope.tenantId }, grantId),
      { readOnly: true },
    );
  }

  /**
   * An export: the tenant's retained log (or the entries matching `filters`) oldest first, through
   * the head as it was when the export began, and the latest checkpoint at or before that head (the
   * chain proof). The checkpoint is read before the head, so even on separate snapshots it never
   * seals a position the export stops short of.
   */
  async exportChain(
    principal: AccessPrincipal & { kind: 'user' },
    filters: AuditFilters = {},
  ): Promise<{
    head: { position: number; hash: string };
    checkpoint: StoredCheckpoint | undefined;
    pages: AsyncGenerator<ChainedAuditEntry[]>;
  }> {
    authorize(principal, 'audit.read', { tenantId: principal.tenantId, isProject: false });
    const tenantId = principal.tenantId;
    const { checkpoint, head } = await this.#onChain(
      tenantId,
      async (chain) => {
        const checkpoint = await auditRepository.latestCheckpoint(chain);
        return { checkpoint, head: await auditRepository.head(chain) };
      },
      true,
    );
    return { head, checkpoint, pages: this.#pagesOldestFirst(tenantId, filters, head.position) };
  }

  /**
   * The entries matching `filters` through position `through`, oldest first, a page at a time by
   * keyset on position (the listing's query, ascending), each page in a short read-only transaction
   * of its own; the next page is fetched while the caller sends this one. At most two pages are held,
   * whatever the size of the log.
   */
  async *#pagesOldestFirst(
    tenantId: string,
    filters: AuditFilters,
    through: number,
  ): AsyncGenerator<ChainedAuditEntry[]> {
    const limit = this.#exportPageSize;
    const fetchAfter = (afterPosition: number) => {
      const page = this.#onChain(
        tenantId,
        (chain) =>
          auditRepository.search(chain, {
            ...filters,
            order: 'oldest',
            afterPosition,
            throughPosition: through,
            limit,
          }),
        true,
      );
      // Awaited below; a page fetched ahead for a download that was abandoned must not go unhandled.
      page.catch(() => undefined);
      return page;
    };
    if (through === 0) return;
    let next = fetchAfter(0);
    for (;;) {
      const page = await next;
      const last = page.at(-1)?.position;
      const more = page.length === limit && last !== undefined && last < through;
      if (more) next = fetchAfter(last);
      if (page.length > 0) yield page;
      if (!more) return;
    }
  }

  /** Verification for a tenant's own owner or admin (the API). */
  async verifyOwn(principal: AccessPrincipal & { kind: 'user' }): Promise<AuditVerification> {
    authorize(principal, 'audit.read', { tenantId: principal.tenantId, isProject: false });
    return this.verify(principal.tenantId);
  }
}

async function appendToChain(
  chain: ChainHandle,
  entries: readonly AuditEntry[],
): Promise<ChainedAuditEntry[]> {
  if (entries.length === 0) return [];
  await auditRepository.lockChain(chain);
  const chained = chainAuditEntries(await auditRepository.head(chain), entries);
  await auditRepository.insert(chain, chained);
  return chained;
}

/**
 * Which damage explains an entry that does not fit, using its neighbours: an entry whose own hash is
 * wrong was modified, unless its successor skips it (inserted); a valid entry linked to the wrong
 * predecessor was moved (reordered) when its successor is that predecessor, sits after an inserted
 * one when it links to what that one links to, and otherwise lost its predecessor (deleted).
 */
function classify(
  entry: ChainLinks,
  selfConsistent: boolean,
  expectedPosition: number,
  expectedPrevHash: string,
  previous: ChainLinks | undefined,
  next: ChainLinks | undefined,
): { position: number; class: TamperClass; message: string } | undefined {
  if (entry.position !== expectedPosition)
    return {
      position: expectedPosition,
      class: 'deleted',
      message: `position ${expectedPosition} is missing`,
    };
  if (!selfConsistent) {
    if (next && next.prevHash === entry.prevHash)
      return { position: entry.position, class: 'inserted', message: `entry ${entry.position} was inserted` };
    return {
      position: entry.position,
      class: 'modified',
      message: `entry ${entry.position} does not match its hash`,
    };
  }
  if (entry.prevHash === expectedPrevHash) return undefined;
  if (previous && entry.prevHash === previous.prevHash)
    return {
      position: previous.position,
      class: 'inserted',
      message: `entry ${previous.position} was inserted`,
    };
  if (next && entry.prevHash === next.hash)
    return {
      position: entry.position,
      class: 'reordered',
      message: `entries ${entry.position} and ${next.position} are out of order`,
    };
  return {
    position: entry.position,
    class: 'deleted',
    message: `the entry before ${entry.position} is missing`,
  };
}

function entryOf(
  context: AuditRequestContext,
  at: Date,
  tenantId: string | null,
  outcome: AuditEntry['outcome'],
  statusCode: number | null,
  errorCode: string | null,
): AuditEntry {
  return {
    at,
    tenantId,
    actorKind: context.actor.kind,
    actorId: context.actor.id,
    apiKeyId: context.actor.apiKeyId,
    grantId: context.grantId,
    action: context.action,
    resourceType: context.resourceType,
    resourceId: context.resourceId,
    outcome,
    statusCode,
    errorCode,
    requestId: context.requestId,
    ip: context.ip,
    userAgent: context.userAgent,
    changes: context.changes,
  };
}

function checkpointPrefix(tenantId: string | null): string {
  return `audit/${tenantId ?? 'platform'}/checkpoints/`;
}

/** Zero-padded so the store lists checkpoints in chain order. */
export function checkpointKey(tenantId: string | null, position: number): string {
  return `${checkpointPrefix(tenantId)}${String(position).padStart(20, '0')}.json`;
}
