import type { WithTenant } from '../../db/with-tenant.ts';
import { newId } from '../../platform/ids.ts';
import { accessErrors } from '../access/policy.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import { authorizeInProject, authorizeProjectRole, type UserAccess } from '../projects/project.service.ts';
import { assertRoom, type TenantLimits } from '../quotas/quota.service.ts';
import type { TenantCache } from '../temporary/tenant-cache.ts';
import { recordRepository, type SealingPolicy, type StoredRecord } from './record.repository.ts';
import { acceptCollection, acceptRecordData, mergePatch, recordErrors } from './record-data.ts';
import { filterErrors, parseFilters } from './record-filter.ts';
import { decodeCursor, encodeCursor, parseSort } from './record-sort.ts';
import {
  FieldKeyring,
  hashCreateRequest,
  openFields,
  openFieldsLoadingKeys,
  sealFields,
  withFieldKeys,
} from './sensitive-fields.ts';

/** Record data is at most this much JSON unless configured otherwise. */
export const defaultRecordMaxBytes = 1024 * 1024;

export const maxListLimit = 200;

const idempotencyKeyPattern = /^[A-Za-z0-9_.:-]{1,200}$/;

/**
 * How long a create's idempotency key answers retries from the cache. The durable copy in the
 * tenant's schema answers for as long as it is kept (see `pruneIdempotencyKeys`).
 */
export const idempotencyTtlMs = 24 * 60 * 60_000;

/**
 * A write reads the policy, then writes guarded by its version. The read takes the project lock that
 * policy changes wait for, but may have waited for one that just committed and so seen the old policy;
 * the guard then fails, and the second read (lock held, fresh statement) sees the current one. So two
 * attempts always suffice; the third is a safety net.
 */
const maxSealAttempts = 3;

/**
 * Records: JSON documents of a project, in named collections. Every operation is one `withTenant`
 * scope that first authorizes the caller in the project (`records.read` or `records.write`), so a
 * project the caller cannot see, or another tenant's, is `not_found`. Changes need the version the
 * caller read (If-Match); a create may carry an idempotency key, kept durably in the tenant's schema.
 *
 * Fields the collection's policy marks sensitive are encrypted before they reach the database and
 * decrypted after they leave it (sensitive-fields.ts); a collection without sensitive fields costs no
 * extra query: its policy arrives in the same statement as the authorization or the record.
 */
export class RecordService {
  readonly #withTenant: WithTenant;
  readonly #keys: TenantKeyService;
  readonly #maxBytes: number;
  readonly #temporary: TenantCache;
  readonly #limitsOf: (tenantId: string) => Promise<TenantLimits>;

  constructor(deps: {
    withTenant: WithTenant;
    keys: TenantKeyService;
    temporary: TenantCache;
    /** The tenant's quotas (QuotaService.limitsOf). */
    limitsOf: (tenantId: string) => Promise<TenantLimits>;
    maxBytes?: number;
  }) {
    this.#withTenant = deps.withTenant;
    this.#keys = deps.keys;
    this.#temporary = deps.temporary;
    this.#limitsOf = deps.limitsOf;
    this.#maxBytes = deps.maxBytes ?? defaultRecordMaxBytes;
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  /**
   * Creates a record. With an idempotency key, a retry of the same request returns the record the
   * first one made (`replayed: true`); the same key with a different request is `idempotency_key_reused`.
   */
  async create(
    principal: UserAccess,
    projectId: string,
    input: { collection: unknown; data: unknown },
    idempotencyKey?: string,
  ): Promise<{ record: StoredRecord; replayed: boolean }> {
    if (idempotencyKey !== undefined && !idempotencyKeyPattern.test(idempotencyKey)) {
      throw recordErrors.invalidIdempotencyKey();
    }
    const collection = acceptCollection(input.collection);
    const data = acceptRecordData(input.data, this.#maxBytes);
    const { tenantId } = principal;
    const cacheKey =
      idempotencyKey === undefined
        ? undefined
        : this.#temporary.key(tenantId, 'idempotency', projectId, principal.userId, idempotencyKey);
    const remembered = cacheKey === undefined ? undefined : await this.#rememberedCreate(tenantId, cacheKey);
    const limits = await this.#limitsOf(tenantId);
    const created = await withFieldKeys(this.#keys, principal.tenantId, (keyring) =>
      this.#withTenant(principal.tenantId, async (scope) => {
        const forCreate = async () => {
          const found = await recordRepository.findForCreate(
            scope.db,
            projectId,
            collection,
            principal.userId,
          );
          if (!found) throw accessErrors.notFound();
          authorizeProjectRole(principal, projectId, found.role, 'records.write');
          return found;
        };
        const allowed = await forCreate();
        let policy = allowed.policy;
        const id = newId();
        let requestHash: Buffer | undefined;
        if (idempotencyKey !== undefined) {
          requestHash = hashCreateRequest(keyring, collection, data, policy.sensitive);
          // A retry the cache remembers skips the claim; otherwise the durable table decides.
          const first =
            remembered ??
            (await recordRepository.claimIdempotencyKey(scope.db, {
              projectId,
              userId: principal.userId,
              key: idempotencyKey,
              requestHash,
              recordId: id,
            }));
          if (first) {
            if (!first.requestHash.equals(requestHash)) throw recordErrors.idempotencyKeyReused();
            const found = await recordRepository.findWithAccess(
              scope.db,
              projectId,
              first.recordId,
              principal.userId,
            );
            if (!found?.record) throw accessErrors.notFound();
            const record = found.record;
            return {
              record: { ...record, data: openFields(keyring, record.id, record.data, found.sensitive) },
              replayed: true,
            };
          }
        }
        // After the replay check: a retry of a create that succeeded is answered even at the quota.
        // The exact size is only worth computing (another serialisation) near the storage quota.
        const { usage } = allowed;
        const near = usage.recordBytes + usage.attachmentBytes + this.#maxBytes > limits.maxStorageBytes;
        assertRoom(limits, usage, { records: 1, bytes: near ? Buffer.byteLength(JSON.stringify(data)) : 1 });
        for (let attempt = 1; ; attempt++) {
          const record = await recordRepository.insert(
            scope.db,
            {
              id,
              projectId,
              collection,
              data: sealFields(keyring, id, data, policy.sensitive),
              userId: principal.userId,
            },
            policy.version,
          );
          if (record) return { record: { ...record, data }, replayed: false, requestHash };
          if (attempt >= maxSealAttempts)
            throw new Error('the collection policy kept changing during a write');
          policy = (await forCreate()).policy;
        }
      }),
    );
    if (cacheKey !== undefined && !created.replayed && created.requestHash !== undefined) {
      // After the commit, so the cache never remembers a create that did not happen. Best effort:
      // a retry the cache forgot is answered by the durable copy.
      const value = `${created.record.id} ${created.requestHash.toString('base64')}`;
      await this.#temporary.setSealed(tenantId, cacheKey, value, idempotencyTtlMs).catch(() => undefined);
    }
    return { record: created.record, replayed: created.replayed };
  }

  /**
   * Forgets the tenant's idempotency keys older than `idempotencyTtlMs` (the maintenance job calls
   * this): a retry a day later is a new create, as the API documents.
   */
  async pruneIdempotencyKeys(tenantId: string): Promise<number> {
    return this.#withTenant(tenantId, (scope) =>
      recordRepository.pruneIdempotencyKeys(scope.db, idempotencyTtlMs),
    );
  }

  /** What the cache remembers of an idempotent create; undefined sends the caller to the database. */
  async #rememberedCreate(
    tenantId: string,
    cacheKey: string,
  ): Promise<{ recordId: string; requestHash: Buffer } | undefined> {
    // An unreachable cache is only slower here: the durable copy answers every retry.
    const value = await this.#temporary.getSealed(tenantId, cacheKey).catch(() => undefined);
    const [recordId, hash] = value?.split(' ') ?? [];
    if (!recordId || !hash) return undefined;
    return { recordId, requestHash: Buffer.from(hash, 'base64') };
  }

  async get(principal: UserAccess, projectId: string, recordId: string): Promise<StoredRecord> {
    const { record, sensitive } = await this.#withTenant(
      principal.tenantId,
      async (scope) => {
        // One query: the project, the caller's role in it, the record and its collection's policy.
        const found = await recordRepository.findWithAccess(scope.db, projectId, recordId, principal.userId);
        if (!found) throw accessErrors.notFound();
        authorizeProjectRole(principal, projectId, found.role, 'records.read');
        if (!found.record) throw accessErrors.notFound();
        return { record: found.record, sensitive: found.sensitive };
      },
      { readOnly: true },
    );
    return this.#open(principal.tenantId, [{ record, sensitive }]).then(([opened]) => opened!);
  }

  /**
   * A page in creation order, or sorted by a top-level field (record-sort.ts); `nextCursor` resumes
   * after its last record (none at the end).
   */
  async list(
    principal: UserAccess,
    projectId: string,
    options: {
      collection?: string | undefined;
      filter?: string | string[] | undefined;
      sort?: string | undefined;
      limit: number;
      cursor?: string | undefined;
    },
  ): Promise<{ items: StoredRecord[]; nextCursor: string | null }> {
    const collection = options.collection === undefined ? undefined : acceptCollection(options.collection);
    const filters = parseFilters(options.filter);
    const sort = parseSort(options.sort);
    const after = options.cursor === undefined ? undefined : decodeCursor(sort, options.cursor);
    const limit = Math.min(Math.max(1, Math.floor(options.limit)), maxListLimit);
    const items = await this.#withTenant(
      principal.tenantId,
      async (scope) => {
        const found = await recordRepository.findForList(scope.db, projectId, collection, principal.userId);
        if (!found) throw accessErrors.notFound();
        authorizeProjectRole(principal, projectId, found.role, 'records.read');
        // Sensitive values are ciphertext in the database: a filter or sort on them would be
        // meaningless at best, so it is refused by name.
        for (const filter of filters) {
          if (found.sensitive.includes(filter.field)) throw filterErrors.notFilterable(filter.field);
        }
        if (sort.field !== undefined && found.sensitive.includes(sort.field)) {
          throw filterErrors.notSortable(sort.field);
        }
        return recordRepository.list(scope.db, projectId, { collection, filters, sort, limit, after });
      },
      { readOnly: true },
    );
    const last = items.at(-1);
    return {
      items: await this.#open(
        principal.tenantId,
        items.map(({ seq: _seq, sortKey: _sortKey, sensitive, ...record }) => ({ record, sensitive })),
      ),
      nextCursor:
        items.length === limit && last
          ? encodeCursor(sort, {
              seq: last.seq,
              key: last.sortKey === null ? { missing: true } : { missing: false, json: last.sortKey },
            })
          : null,
    };
  }

  /** Replaces the record's data (PUT), if it is still at `expectedVersion` (undefined: If-Match *). */
  async replace(
    principal: UserAccess,
    projectId: string,
    recordId: string,
    expectedVersion: number | undefined,
    data: unknown,
  ): Promise<StoredRecord> {
    const accepted = acceptRecordData(data, this.#maxBytes);
    return this.#change(principal, projectId, recordId, expectedVersion, accepted);
  }

  /** Applies an RFC 7396 merge patch to the record's data (PATCH), under the same precondition. */
  async patch(
    principal: UserAccess,
    projectId: string,
    recordId: string,
    expectedVersion: number | undefined,
    patch: unknown,
  ): Promise<StoredRecord> {
    const accepted = acceptRecordData(patch, this.#maxBytes);
    return this.#change(principal, projectId, recordId, expectedVersion, (current) =>
      acceptRecordData(mergePatch(current, accepted), this.#maxBytes),
    );
  }

  async delete(
    principal: UserAccess,
    projectId: string,
    recordId: string,
    expectedVersion: number | undefined,
  ): Promise<void> {
    await this.#withTenant(principal.tenantId, async (scope) => {
      await authorizeInProject(scope.db, principal, projectId, 'records.write');
      if (await recordRepository.delete(scope.db, projectId, recordId, expectedVersion)) return;
      if (await recordRepository.find(scope.db, projectId, recordId)) throw recordErrors.preconditionFailed();
      throw accessErrors.notFound();
    });
  }

  /**
   * `next` is the new data, or how to make it from the current (plaintext) data. A replacement never
   * decrypts what it replaces, so a record whose stored value was damaged can still be overwritten.
   */
  async #change(
    principal: UserAccess,
    projectId: string,
    recordId: string,
    expectedVersion: number | undefined,
    next: Record<string, unknown> | ((current: Record<string, unknown>) => Record<string, unknown>),
  ): Promise<StoredRecord> {
    return withFieldKeys(this.#keys, principal.tenantId, (keyring) =>
      this.#withTenant(principal.tenantId, async (scope) => {
        for (let attempt = 1; ; attempt++) {
          const found = await recordRepository.findForChange(scope.db, projectId, recordId, principal.userId);
          if (!found) throw accessErrors.notFound();
          authorizeProjectRole(principal, projectId, found.role, 'records.write');
          const current = found.record;
          if (!current) throw accessErrors.notFound();
          if (expectedVersion !== undefined && current.version !== expectedVersion) {
            throw recordErrors.preconditionFailed();
          }
          const policy: SealingPolicy = found.policy;
          const data =
            typeof next === 'function'
              ? next(openFields(keyring, recordId, current.data, policy.sensitive))
              : next;
          // Both guards are repeated in the UPDATE itself: a concurrent change of the record, or of
          // its collection's policy, between the read above and this write is never overwritten.
          const updated = await recordRepository.update(scope.db, projectId, recordId, {
            data: sealFields(keyring, recordId, data, policy.sensitive),
            userId: principal.userId,
            expectedVersion: current.version,
            collection: current.collection,
            policyVersion: policy.version,
          });
          if (updated) return { ...updated, data };
          // Read again: a changed record then fails its precondition (or, for If-Match *, is
          // changed on top of its new version); a changed policy is sealed for anew.
          if (attempt >= maxSealAttempts) throw recordErrors.preconditionFailed();
        }
      }),
    );
  }

  /** Decrypts sensitive fields after the transaction, fetching keys as needed. */
  async #open(
    tenantId: string,
    rows: ReadonlyArray<{ record: StoredRecord; sensitive: readonly string[] }>,
  ): Promise<StoredRecord[]> {
    const keyring = new FieldKeyring(this.#keys, tenantId);
    const opened: StoredRecord[] = [];
    for (const { record, sensitive } of rows) {
      opened.push(
        sensitive.length === 0
          ? record
          : { ...record, data: await openFieldsLoadingKeys(keyring, record.id, record.data, sensitive) },
      );
    }
    return opened;
  }
}
