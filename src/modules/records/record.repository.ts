import { type Kysely, type RawBuilder, type Selectable, sql } from 'kysely';
import type { AnyKysely } from '../../db/database.ts';
import { cachedStatement } from '../../db/statement-cache.ts';
import type { RecordsTable, TenantTables } from '../../db/tenant-tables.ts';
import type { ProjectRole } from '../access/policy.ts';
import { type StoredUsage, usageColumns, usageOf } from '../quotas/usage.repository.ts';
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
  /**
   * Inserts the record if the collection's policy is still at `policyVersion` (0: none), the version
   * its data was sealed for; undefined when the policy changed meanwhile (read it again and retry).
   */
  async insert(
    db: AnyKysely,
    record: {
      id: string;
      projectId: string;
      collection: string;
      data: Record<string, unknown>;
      userId: string;
    },
    policyVersion: number,
  ): Promise<StoredRecord | undefined> {
    const [row] = await insertRecord(db, {
      id: record.id,
      projectId: record.projectId,
      collection: record.collection,
      data: JSON.stringify(record.data),
      userId: record.userId,
      policyVersion,
    });
    return row && toRecord({ ...row, data: record.data });
  },

  /**
   * Before creating a record in `collection`: the caller's role in the project and the collection's
   * current policy; undefined when the project does not exist. Takes a KEY SHARE lock on the project
   * row until the transaction ends, so no policy change (which locks it FOR UPDATE) can re-encrypt the
   * collection between this write reading the policy and committing.
   */
  async findForCreate(
    db: AnyKysely,
    projectId: string,
    collection: string,
    userId: string,
  ): Promise<{ role: ProjectRole | undefined; policy: SealingPolicy; usage: StoredUsage } | undefined> {
    const [row] = await readForCreate(db, { projectId, collection, userId });
    if (!row) return undefined;
    return {
      role: row.role ?? undefined,
      policy: sealingPolicy(row.version, row.sensitive),
      usage: usageOf(row),
    };
  },

  /**
   * Before changing a record: the caller's role, the record as stored (if there), and its collection's
   * current policy, with the same project-row lock as `findForCreate`.
   */
  async findForChange(
    db: AnyKysely,
    projectId: string,
    recordId: string,
    userId: string,
  ): Promise<
    { role: ProjectRole | undefined; record: StoredRecord | undefined; policy: SealingPolicy } | undefined
  > {
    const [row] = await readForChange(db, { projectId, recordId, userId });
    if (!row) return undefined;
    const { role, policy_version, policy_sensitive, ...record } = row;
    return {
      role: role ?? undefined,
      record: record.id === null ? undefined : toRecord(record as Omit<Selectable<RecordsTable>, 'seq'>),
      policy: sealingPolicy(policy_version, policy_sensitive),
    };
  },

  async find(db: AnyKysely, projectId: string, recordId: string): Promise<StoredRecord | undefined> {
    const row = await tenant(db)
      .selectFrom('records')
      .select(recordColumns)
      .where('id', '=', recordId)
      .where('project_id', '=', projectId)
      .executeTakeFirst();
    return row && toRecord(row);
  },

  /**
   * For a read in one round trip: whether the project exists, the caller's role in it, the record if
   * it is there, and the fields its collection's policy marks sensitive. Undefined when the project is
   * not. One statement, so record and policy are of the same snapshot.
   */
  async findWithAccess(
    db: AnyKysely,
    projectId: string,
    recordId: string,
    userId: string,
  ): Promise<
    | { role: ProjectRole | undefined; record: StoredRecord | undefined; sensitive: readonly string[] }
    | undefined
  > {
    const [row] = await readWithAccess(db, { projectId, recordId, userId });
    if (!row) return undefined;
    const { role, sensitive, ...record } = row;
    return {
      role: role ?? undefined,
      record: record.id === null ? undefined : toRecord(record as Omit<Selectable<RecordsTable>, 'seq'>),
      sensitive: sensitive ?? [],
    };
  },

  /**
   * Before a listing: the caller's role in the project and every field that is sensitive in the
   * collection (or, without one, in any collection of the project), which filters and sorts may not
   * name. Undefined when the project does not exist.
   */
  async findForList(
    db: AnyKysely,
    projectId: string,
    collection: string | undefined,
    userId: string,
  ): Promise<{ role: ProjectRole | undefined; sensitive: readonly string[] } | undefined> {
    const row = await tenant(db)
      .selectFrom('projects as p')
      .leftJoin('project_members as m', (join) =>
        join.onRef('m.project_id', '=', 'p.id').on('m.user_id', '=', userId),
      )
      .select((eb) => [
        'm.role',
        // The newest version of each collection's policy, its sensitive fields flattened.
        eb
          .selectFrom((inner) => {
            let current = inner
              .selectFrom('collection_policies as cp')
              .distinctOn('cp.collection')
              .select('cp.sensitive')
              .whereRef('cp.project_id', '=', 'p.id');
            if (collection !== undefined) current = current.where('cp.collection', '=', collection);
            return current.orderBy('cp.collection').orderBy('cp.version', 'desc').as('cur');
          })
          .select(sql<string[]>`coalesce(array_agg(distinct f), '{}')`.as('fields'))
          // A set-returning function aliased f: its one column is f too.
          .innerJoin(sql<{ f: string }>`unnest(cur.sensitive)`.as('f'), (join) => join.onTrue())
          .as('sensitive'),
      ])
      .where('p.id', '=', projectId)
      .executeTakeFirst();
    if (!row) return undefined;
    return { role: row.role ?? undefined, sensitive: row.sensitive ?? [] };
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
  ): Promise<Array<StoredRecord & { seq: string; sortKey: string | null; sensitive: readonly string[] }>> {
    const { sort, after } = options;
    const direction = sort.descending ? 'desc' : 'asc';
    const key = sort.field === undefined ? undefined : sortKeyExpression(sort.field);
    let query = tenant(db)
      .selectFrom('records')
      .select([...recordColumns, 'seq'])
      .select((eb) => [
        key ? sql<string | null>`${key}::text`.as('sort_key') : sql<null>`null`.as('sort_key'),
        // Each record's policy in the same statement as its data: they are of one snapshot.
        eb
          .selectFrom('collection_policies as cp')
          .select('cp.sensitive')
          .whereRef('cp.project_id', '=', 'records.project_id')
          .whereRef('cp.collection', '=', 'records.collection')
          .orderBy('cp.version', 'desc')
          .limit(1)
          .as('sensitive'),
      ])
      .where('project_id', '=', projectId);
    if (options.collection !== undefined) query = query.where('collection', '=', options.collection);
    for (const filter of options.filters ?? []) query = query.where(filterExpression(filter));
    if (after) query = query.where(resumeAfter(key, sort.descending, after));
    if (key) query = query.orderBy(sql`${key} is null`).orderBy(key, direction);
    const rows = await query.orderBy('seq', direction).limit(options.limit).execute();
    // The pg driver reads a bigint back as a string, PGlite as a number: one form for the cursor.
    return rows.map((row) => ({
      ...toRecord(row),
      seq: String(row.seq),
      sortKey: row.sort_key,
      sensitive: row.sensitive ?? [],
    }));
  },

  /**
   * Writes new data if the record is still at `expectedVersion` (undefined: any) and its collection's
   * policy at `policyVersion`; the row as it is now, or undefined when the record is gone or either
   * changed meanwhile.
   */
  async update(
    db: AnyKysely,
    projectId: string,
    recordId: string,
    change: {
      data: Record<string, unknown>;
      userId: string;
      expectedVersion: number | undefined;
      /** The collection and the policy version its data was sealed for. */
      collection: string;
      policyVersion: number;
    },
  ): Promise<StoredRecord | undefined> {
    const t = tenant(db);
    let query = t
      .updateTable('records')
      .set({
        data: JSON.stringify(change.data),
        version: sql`version + 1`,
        updated_by: change.userId,
        updated_at: sql`now()`,
      })
      .where('id', '=', recordId)
      .where('project_id', '=', projectId)
      .where('collection', '=', change.collection)
      .where(policyVersionIs(t, projectId, change.collection, change.policyVersion));
    if (change.expectedVersion !== undefined) query = query.where('version', '=', change.expectedVersion);
    const row = await query.returning(recordColumns).executeTakeFirst();
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

  /**
   * For a policy change: the next `limit` records of the collection (in creation order, after
   * `afterSeq`) that have any of `fields`, with the values of just those fields.
   */
  async listFieldValues(
    db: AnyKysely,
    projectId: string,
    collection: string,
    fields: readonly string[],
    afterSeq: string,
    limit: number,
  ): Promise<Array<{ id: string; seq: string; values: Record<string, unknown> }>> {
    const names = sql`${[...fields]}::text[]`;
    const rows = await tenant(db)
      .selectFrom('records')
      .select([
        'id',
        'seq',
        sql<
          Record<string, unknown>
        >`(select jsonb_object_agg(e.key, e.value) from jsonb_each(data) e where e.key = any(${names}))`.as(
          'values',
        ),
      ])
      .where('project_id', '=', projectId)
      .where('collection', '=', collection)
      .where(sql<boolean>`data ?| ${names}`)
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(limit)
      .execute();
    return rows.map((row) => ({ id: row.id, seq: String(row.seq), values: row.values }));
  },

  /**
   * Replaces top-level fields of several records in one statement (`data || patch`). Storage only:
   * what the API shows does not change, so neither do version, ETag nor updated_at.
   */
  async replaceFields(
    db: AnyKysely,
    projectId: string,
    patches: ReadonlyMap<string, Record<string, unknown>>,
  ): Promise<void> {
    if (patches.size === 0) return;
    const byId = JSON.stringify(Object.fromEntries(patches));
    await tenant(db)
      .updateTable('records')
      .set({ data: sql<string>`data || (${byId}::jsonb -> id::text)` })
      .where('project_id', '=', projectId)
      .where('id', 'in', [...patches.keys()])
      .execute();
  },

  /** Forgets idempotency keys claimed more than `ageMs` ago; returns how many. */
  async pruneIdempotencyKeys(db: AnyKysely, ageMs: number): Promise<number> {
    const result = await tenant(db)
      .deleteFrom('record_idempotency')
      .where('created_at', '<', sql<Date>`now() - make_interval(secs => ${ageMs / 1000})`)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
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

/** What sealing a record's data depends on: its collection's policy version (0: none) and fields. */
export interface SealingPolicy {
  version: number;
  sensitive: readonly string[];
}

function sealingPolicy(version: number | null, sensitive: string[] | null): SealingPolicy {
  return { version: version ?? 0, sensitive: sensitive ?? [] };
}

/** True while the collection's current policy version is `version` (0: it has none). */
function policyVersionIs(t: Kysely<TenantTables>, projectId: string, collection: string, version: number) {
  const current = t
    .selectFrom('collection_policies')
    .select((eb) => eb.fn.max('version').as('version'))
    .where('project_id', '=', projectId)
    .where('collection', '=', collection);
  return sql<boolean>`coalesce((${current}), 0) = ${version}`;
}

function tenant(db: AnyKysely): Kysely<TenantTables> {
  return db as Kysely<TenantTables>;
}

/**
 * A record's columns, named rather than `*`: statements are prepared once per connection, and a
 * prepared `*` would break when a migration adds a column (see db/prepared-statements.ts).
 */
const recordColumns = [
  'id',
  'project_id',
  'collection',
  'data',
  'version',
  'created_by',
  'updated_by',
  'created_at',
  'updated_at',
] as const;

const recordColumnsWithoutData = recordColumns.filter((column) => column !== 'data');

function recordColumnsOf<Alias extends string>(alias: Alias) {
  return recordColumns.map((column) => `${alias}.${column}` as const);
}

// The statements of a single-record read, a create and a change, compiled once per tenant schema.

const readWithAccess = cachedStatement((db, p: { projectId: string; recordId: string; userId: string }) =>
  tenant(db)
    .selectFrom('projects as p')
    .leftJoin('project_members as m', (join) =>
      join.onRef('m.project_id', '=', 'p.id').on('m.user_id', '=', p.userId),
    )
    .leftJoin('records as r', (join) => join.onRef('r.project_id', '=', 'p.id').on('r.id', '=', p.recordId))
    .select((eb) => [
      'm.role',
      ...recordColumnsOf('r'),
      eb
        .selectFrom('collection_policies as cp')
        .select('cp.sensitive')
        .whereRef('cp.project_id', '=', 'p.id')
        .whereRef('cp.collection', '=', 'r.collection')
        .orderBy('cp.version', 'desc')
        .limit(1)
        .as('sensitive'),
    ])
    .where('p.id', '=', p.projectId),
);

const readForChange = cachedStatement((db, p: { projectId: string; recordId: string; userId: string }) =>
  tenant(db)
    .selectFrom('projects as p')
    .leftJoin('project_members as m', (join) =>
      join.onRef('m.project_id', '=', 'p.id').on('m.user_id', '=', p.userId),
    )
    .leftJoin('records as r', (join) => join.onRef('r.project_id', '=', 'p.id').on('r.id', '=', p.recordId))
    .leftJoinLateral(
      (eb) =>
        eb
          .selectFrom('collection_policies as cp')
          .select(['cp.version', 'cp.sensitive'])
          .whereRef('cp.project_id', '=', 'p.id')
          .whereRef('cp.collection', '=', 'r.collection')
          .orderBy('cp.version', 'desc')
          .limit(1)
          .as('pol'),
      (join) => join.onTrue(),
    )
    .select([
      'm.role',
      ...recordColumnsOf('r'),
      'pol.version as policy_version',
      'pol.sensitive as policy_sensitive',
    ])
    .where('p.id', '=', p.projectId)
    .forKeyShare('p'),
);

const readForCreate = cachedStatement((db, p: { projectId: string; collection: string; userId: string }) =>
  tenant(db)
    .selectFrom('projects as p')
    .leftJoin('project_members as m', (join) =>
      join.onRef('m.project_id', '=', 'p.id').on('m.user_id', '=', p.userId),
    )
    .leftJoinLateral(
      (eb) =>
        eb
          .selectFrom('collection_policies as cp')
          .select(['cp.version', 'cp.sensitive'])
          .whereRef('cp.project_id', '=', 'p.id')
          .where('cp.collection', '=', p.collection)
          .orderBy('cp.version', 'desc')
          .limit(1)
          .as('pol'),
      (join) => join.onTrue(),
    )
    .select(['m.role', 'pol.version', 'pol.sensitive'])
    // The tenant's usage, for the quota check, in the same round trip.
    .select(usageColumns)
    .where('p.id', '=', p.projectId)
    .forKeyShare('p'),
);

const insertRecord = cachedStatement(
  (
    db,
    p: {
      id: string;
      projectId: string;
      collection: string;
      data: string;
      userId: string;
      policyVersion: number;
    },
  ) => {
    const t = tenant(db);
    return (
      t
        .insertInto('records')
        .columns(['id', 'project_id', 'collection', 'data', 'created_by', 'updated_by'])
        .expression(
          t
            .selectNoFrom([
              sql<string>`${p.id}::uuid`.as('id'),
              sql<string>`${p.projectId}::uuid`.as('project_id'),
              sql<string>`${p.collection}::text`.as('collection'),
              sql<string>`${p.data}::jsonb`.as('data'),
              sql<string>`${p.userId}::uuid`.as('created_by'),
              sql<string>`${p.userId}::uuid`.as('updated_by'),
            ])
            .where(policyVersionIs(t, p.projectId, p.collection, p.policyVersion)),
        )
        // Not the data: the caller has it, and it need not travel back.
        .returning(recordColumnsWithoutData)
    );
  },
);

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
