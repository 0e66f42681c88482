import { type Kysely, type RawBuilder, type Selectable, sql } from 'kysely';
import type { AnyKysely } from '../../db/database.ts';
import type { RecordsTable, TenantTables } from '../../db/tenant-tables.ts';
import type { ProjectRole } from '../access/policy.ts';
import type { RecordFilter } from './record-filter.ts';
import { type RecordCursor, type RecordSort, sortStringChars } from './record-sort.ts';

export interface StoredRecord {
  id: string;
  projectId: string;
  collection: string;
  data: Record<string, unknown>;
  version: number;
  createdBy: string;
  updatedBy: string;
  createdAt: Date;
  updatedAt: Date;
}

/** Records of one tenant: every method takes the tenant-scoped handle from `withTenant`. */
export const recordRepository = {
  async insert(
    db: AnyKysely,
    record: {
      id: string;
      projectId: string;
      collection: string;
      data: Record<string, unknown>;
      userId: string;
    },
  ): Promise<StoredRecord> {
    const row = await tenant(db)
      .insertInto('records')
      .values({
        id: record.id,
        project_id: record.projectId,
        collection: record.collection,
        data: JSON.stringify(record.data),
        created_by: record.userId,
        updated_by: record.userId,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toRecord(row);
  },

  async find(db: AnyKysely, projectId: string, recordId: string): Promise<StoredRecord | undefined> {
    const row = await tenant(db)
      .selectFrom('records')
      .selectAll()
      .where('id', '=', recordId)
      .where('project_id', '=', projectId)
      .executeTakeFirst();
    return row && toRecord(row);
  },

  /**
   * For a read in one round trip: whether the project exists, the caller's role in it, and the
   * record if it is there. Undefined when the project is not.
   */
  async findWithAccess(
    db: AnyKysely,
    projectId: string,
    recordId: string,
    userId: string,
  ): Promise<{ role: ProjectRole | undefined; record: StoredRecord | undefined } | undefined> {
    const row = await tenant(db)
      .selectFrom('projects as p')
      .leftJoin('project_members as m', (join) =>
        join.onRef('m.project_id', '=', 'p.id').on('m.user_id', '=', userId),
      )
      .leftJoin('records as r', (join) => join.onRef('r.project_id', '=', 'p.id').on('r.id', '=', recordId))
      .select([
        'm.role',
        'r.id',
        'r.project_id',
        'r.collection',
        'r.data',
        'r.version',
        'r.created_by',
        'r.updated_by',
        'r.created_at',
        'r.updated_at',
      ])
      .where('p.id', '=', projectId)
      .executeTakeFirst();
    if (!row) return undefined;
    const { role, ...record } = row;
    return {
      role: role ?? undefined,
      record: record.id === null ? undefined : toRecord(record as Omit<Selectable<RecordsTable>, 'seq'>),
    };
  },

  /**
   * A page in `sort` order (see record-sort.ts), resuming after `after`. Each record comes with its
   * creation sequence number and, for a field sort, its sort key as jsonb text (null: no such field),
   * which is what the next cursor holds.
   */
  async list(
    db: AnyKysely,
    projectId: string,
    options: {
      collection?: string | undefined;
      filters?: readonly RecordFilter[];
      sort: RecordSort;
      limit: number;
      after?: RecordCursor | undefined;
    },
  ): Promise<Array<StoredRecord & { seq: string; sortKey: string | null }>> {
    const { sort, after } = options;
    const direction = sort.descending ? 'desc' : 'asc';
    const key = sort.field === undefined ? undefined : sortKeyExpression(sort.field);
    let query = tenant(db)
      .selectFrom('records')
      .selectAll()
      .select(key ? sql<string | null>`${key}::text`.as('sort_key') : sql<null>`null`.as('sort_key'))
      .where('project_id', '=', projectId);
    if (options.collection !== undefined) query = query.where('collection', '=', options.collection);
    for (const filter of options.filters ?? []) query = query.where(filterExpression(filter));
    if (after) query = query.where(resumeAfter(key, sort.descending, after));
    if (key) query = query.orderBy(sql`${key} is null`).orderBy(key, direction);
    const rows = await query.orderBy('seq', direction).limit(options.limit).execute();
    // The pg driver reads a bigint back as a string, PGlite as a number: one form for the cursor.
    return rows.map((row) => ({ ...toRecord(row), seq: String(row.seq), sortKey: row.sort_key }));
  },

  /**
   * Writes new data if the record is still at `expectedVersion` (undefined: any); the row as it is
   * now, or undefined when the record is gone or was changed meanwhile.
   */
  async update(
    db: AnyKysely,
    projectId: string,
    recordId: string,
    change: { data: Record<string, unknown>; userId: string; expectedVersion: number | undefined },
  ): Promise<StoredRecord | undefined> {
    let query = tenant(db)
      .updateTable('records')
      .set({
        data: JSON.stringify(change.data),
        version: sql`version + 1`,
        updated_by: change.userId,
        updated_at: sql`now()`,
      })
      .where('id', '=', recordId)
      .where('project_id', '=', projectId);
    if (change.expectedVersion !== undefined) query = query.where('version', '=', change.expectedVersion);
    const row = await query.returningAll().executeTakeFirst();
    return row && toRecord(row);
  },

  async delete(
    db: AnyKysely,
    projectId: string,
    recordId: string,
    expectedVersion: number | undefined,
  ): Promise<boolean> {
    let query = tenant(db)
      .deleteFrom('records')
      .where('id', '=', recordId)
      .where('project_id', '=', projectId);
    if (expectedVersion !== undefined) query = query.where('version', '=', expectedVersion);
    const result = await query.executeTakeFirst();
    return result.numDeletedRows > 0n;
  },

  /** Claims an idempotency key; undefined if this call claimed it, else what the first call stored. */
  async claimIdempotencyKey(
    db: AnyKysely,
    claim: { projectId: string; userId: string; key: string; requestHash: Buffer; recordId: string },
  ): Promise<{ requestHash: Buffer; recordId: string } | undefined> {
    const inserted = await tenant(db)
      .insertInto('record_idempotency')
      .values({
        project_id: claim.projectId,
        user_id: claim.userId,
        key: claim.key,
        request_hash: claim.requestHash,
        record_id: claim.recordId,
      })
      .onConflict((oc) => oc.columns(['project_id', 'user_id', 'key']).doNothing())
      .returning('record_id')
      .executeTakeFirst();
    if (inserted) return undefined;
    const first = await tenant(db)
      .selectFrom('record_idempotency')
      .select(['request_hash', 'record_id'])
      .where('project_id', '=', claim.projectId)
      .where('user_id', '=', claim.userId)
      .where('key', '=', claim.key)
      .executeTakeFirstOrThrow();
    return { requestHash: Buffer.from(first.request_hash), recordId: first.record_id };
  },
};

/**
 * A fixed SQL shape per operator; field and value are bound parameters. `ne` also matches records
 * without the field; range operators only values of the same JSON type as the filter's.
 */
function filterExpression(filter: RecordFilter) {
  const field = sql`(data -> ${filter.field})`;
  const value = sql`${filter.json}::jsonb`;
  const sameType = sql`jsonb_typeof(data -> ${filter.field}) = jsonb_typeof(${value})`;
  switch (filter.op) {
    case 'eq':
      return sql<boolean>`${field} = ${value}`;
    case 'ne':
      return sql<boolean>`${field} is distinct from ${value}`;
    case 'lt':
      return sql<boolean>`(${sameType} and ${field} < ${value})`;
    case 'lte':
      return sql<boolean>`(${sameType} and ${field} <= ${value})`;
    case 'gt':
      return sql<boolean>`(${sameType} and ${field} > ${value})`;
    case 'gte':
      return sql<boolean>`(${sameType} and ${field} >= ${value})`;
  }
}

/**
 * A bounded jsonb sort key for a top-level field: strings cut to their first `sortStringChars`
 * characters, every array as `[null]` and every object as `{}` (an empty array would sort before
 * null, for historical reasons in Postgres), anything else as it is. SQL null when the field is absent.
 */
function sortKeyExpression(field: string) {
  const value = sql`(data -> ${field})`;
  return sql`(case jsonb_typeof(${value}) when 'string' then to_jsonb(left(data ->> ${field}, ${sql.lit(sortStringChars)})) when 'array' then '[null]'::jsonb when 'object' then '{}'::jsonb else ${value} end)`;
}

/**
 * The keyset condition: strictly after the cursor's (sort key, seq) in the listing's order, where
 * records without the field come after all others in both directions.
 */
function resumeAfter(key: RawBuilder<unknown> | undefined, descending: boolean, after: RecordCursor) {
  const seq = sql`${after.seq}::bigint`;
  const beyond = descending ? sql.raw('<') : sql.raw('>');
  if (key === undefined) return sql<boolean>`seq ${beyond} ${seq}`;
  if (after.key === undefined || after.key.missing)
    return sql<boolean>`(${key} is null and seq ${beyond} ${seq})`;
  const value = sql`${after.key.json}::jsonb`;
  return sql<boolean>`((${key}, seq) ${beyond} (${value}, ${seq}) or ${key} is null)`;
}

function tenant(db: AnyKysely): Kysely<TenantTables> {
  return db as Kysely<TenantTables>;
}

function toRecord(row: Omit<Selectable<RecordsTable>, 'seq'>): StoredRecord {
  return {
    id: row.id,
    projectId: row.project_id,
    collection: row.collection,
    data: row.data,
    version: row.version,
    createdBy: row.created_by,
    updatedBy: row.updated_by,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}
