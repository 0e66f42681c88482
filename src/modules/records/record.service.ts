import { createHash } from 'node:crypto';
import type { WithTenant } from '../../db/with-tenant.ts';
import { newId } from '../../platform/ids.ts';
import { accessErrors } from '../access/policy.ts';
import { authorizeInProject, authorizeProjectRole, type UserAccess } from '../projects/project.service.ts';
import { recordRepository, type StoredRecord } from './record.repository.ts';
import { acceptCollection, acceptRecordData, mergePatch, recordErrors } from './record-data.ts';
import { parseFilters } from './record-filter.ts';
import { decodeCursor, encodeCursor, parseSort } from './record-sort.ts';

/** Record data is at most this much JSON unless configured otherwise. */
export const defaultRecordMaxBytes = 1024 * 1024;

export const maxListLimit = 200;

const idempotencyKeyPattern = /^[A-Za-z0-9_.:-]{1,200}$/;

/**
 * Records: JSON documents of a project, in named collections. Every operation is one `withTenant`
 * scope that first authorizes the caller in the project (`records.read` or `records.write`), so a
 * project the caller cannot see, or another tenant's, is `not_found`. Changes need the version the
 * caller read (If-Match); a create may carry an idempotency key, kept durably in the tenant's schema.
 */
export class RecordService {
  readonly #withTenant: WithTenant;
  readonly #maxBytes: number;

  constructor(deps: { withTenant: WithTenant; maxBytes?: number }) {
    this.#withTenant = deps.withTenant;
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
    return this.#withTenant(principal.tenantId, async (scope) => {
      await authorizeInProject(scope.db, principal, projectId, 'records.write');
      const id = newId();
      if (idempotencyKey !== undefined) {
        const requestHash = createHash('sha256')
          .update(JSON.stringify([collection, data]))
          .digest();
        const first = await recordRepository.claimIdempotencyKey(scope.db, {
          projectId,
          userId: principal.userId,
          key: idempotencyKey,
          requestHash,
          recordId: id,
        });
        if (first) {
          if (!first.requestHash.equals(requestHash)) throw recordErrors.idempotencyKeyReused();
          const record = await recordRepository.find(scope.db, projectId, first.recordId);
          if (!record) throw accessErrors.notFound();
          return { record, replayed: true };
        }
      }
      const record = await recordRepository.insert(scope.db, {
        id,
        projectId,
        collection,
        data,
        userId: principal.userId,
      });
      return { record, replayed: false };
    });
  }

  async get(principal: UserAccess, projectId: string, recordId: string): Promise<StoredRecord> {
    return this.#withTenant(
      principal.tenantId,
      async (scope) => {
        // One query: the project, the caller's role in it and the record.
        const found = await recordRepository.findWithAccess(scope.db, projectId, recordId, principal.userId);
        if (!found) throw accessErrors.notFound();
        authorizeProjectRole(principal, projectId, found.role, 'records.read');
        if (!found.record) throw accessErrors.notFound();
        return found.record;
      },
      { readOnly: true },
    );
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
        await authorizeInProject(scope.db, principal, projectId, 'records.read');
        return recordRepository.list(scope.db, projectId, { collection, filters, sort, limit, after });
      },
      { readOnly: true },
    );
    const last = items.at(-1);
    return {
      items: items.map(({ seq: _seq, sortKey: _sortKey, ...record }) => record),
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
    return this.#change(principal, projectId, recordId, expectedVersion, () => accepted);
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
      acceptRecordData(mergePatch(current.data, accepted), this.#maxBytes),
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

  async #change(
    principal: UserAccess,
    projectId: string,
    recordId: string,
    expectedVersion: number | undefined,
    next: (current: StoredRecord) => Record<string, unknown>,
  ): Promise<StoredRecord> {
    return this.#withTenant(principal.tenantId, async (scope) => {
      await authorizeInProject(scope.db, principal, projectId, 'records.write');
      const current = await recordRepository.find(scope.db, projectId, recordId);
      if (!current) throw accessErrors.notFound();
      if (expectedVersion !== undefined && current.version !== expectedVersion) {
        throw recordErrors.preconditionFailed();
      }
      // The version check is repeated in the UPDATE itself, so a concurrent change between the read
      // above and this write still fails the precondition instead of being overwritten.
      const updated = await recordRepository.update(scope.db, projectId, recordId, {
        data: next(current),
        userId: principal.userId,
        expectedVersion: current.version,
      });
      if (!updated) throw recordErrors.preconditionFailed();
      return updated;
    });
  }
}
