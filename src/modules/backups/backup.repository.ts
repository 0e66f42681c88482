import { sql } from 'kysely';
import type { AnyKysely } from '../../db/database.ts';
import { isJournaledTable, journalTriggerName } from '../../db/journal.ts';
import type { TenantScope } from '../../db/with-tenant.ts';
import type { JournalEntry } from './backup-format.ts';

/**
 * The SQL of backups: the tenant's journal and backup bookkeeping (inside `withTenant`), consistent
 * reads for snapshots, and writes into a fresh schema for restores. Table and column names come from
 * `pg_catalog` of the tenant's own schema, never from a request or a backup file unchecked.
 */

export interface SegmentRow {
  segmentNo: number;
  firstSeq: string;
  lastSeq: string;
  entryCount: number;
  firstAt: Date;
  lastAt: Date;
  schemaVersion: string;
  shippedTo: string[];
}

export interface LocationPosition {
  location: string;
  /** The newest segment this location holds, and the newest change in it. */
  lastSegmentNo: number | null;
  lastShippedAt: Date | null;
  /** Journal entries this location does not hold yet, and the oldest one's time. */
  pendingEntries: number;
  oldestPendingAt: Date | null;
}

const journal = (scope: TenantScope) => sql.id(scope.schema, '_journal');
const segments = (scope: TenantScope) => sql.id(scope.schema, '_backup_segments');
const snapshots = (scope: TenantScope) => sql.id(scope.schema, '_backup_snapshots');

/** The newest migration applied to the schema: the version its rows are shaped by. */
export async function findSchemaVersion(trx: AnyKysely, schema: string): Promise<string> {
  const { rows } = await sql<{ name: string | null }>`
    select max(name) as name from ${sql.id(schema, '_migrations')}`.execute(trx);
  return rows[0]?.name ?? '';
}

/**
 * Seals up to `maxEntries` unsealed journal entries into the next segment; undefined when there are
 * none. Entries of transactions still running are invisible here and land in a later segment; for
 * any one row, its later change always lands in the same or a later segment.
 */
export async function sealNextSegment(
  scope: TenantScope,
  maxEntries: number,
): Promise<SegmentRow | undefined> {
  const version = await findSchemaVersion(scope.trx, scope.schema);
  const { rows } = await sql<{
    segment_no: string;
    first_seq: string;
    last_seq: string;
    entry_count: number;
    first_at: Date;
    last_at: Date;
  }>`
    with next as (select coalesce(max(segment_no), 0) + 1 as no from ${segments(scope)}),
    picked as (
      select seq from ${journal(scope)} where segment_no is null order by seq limit ${maxEntries} for update
    ),
    sealed as (
      update ${journal(scope)} j set segment_no = (select no from next)
      from picked where j.seq = picked.seq
      returning j.seq, j.at
    )
    insert into ${segments(scope)} (segment_no, first_seq, last_seq, entry_count, first_at, last_at, schema_version)
    select (select no from next), min(seq), max(seq), count(*), min(at), max(at), ${version}
    from sealed having count(*) > 0
    returning segment_no::text, first_seq::text, last_seq::text, entry_count, first_at, last_at`.execute(
    scope.trx,
  );
  const row = rows[0];
  return row && { ...toSegment({ ...row, schema_version: version, shipped_to: [] }) };
}

function toSegment(row: {
  segment_no: string;
  first_seq: string;
  last_seq: string;
  entry_count: number;
  first_at: Date;
  last_at: Date;
  schema_version: string;
  shipped_to: string[];
}): SegmentRow {
  return {
    segmentNo: Number(row.segment_no),
    firstSeq: row.first_seq,
    lastSeq: row.last_seq,
    entryCount: Number(row.entry_count),
    firstAt: new Date(row.first_at),
    lastAt: new Date(row.last_at),
    schemaVersion: row.schema_version,
    shippedTo: row.shipped_to,
  };
}

/** Sealed segments whose entries are still in the journal (some location lacks them), oldest first. */
export async function listUnprunedSegments(scope: TenantScope): Promise<SegmentRow[]> {
  const { rows } = await sql<Parameters<typeof toSegment>[0]>`
    select s.segment_no::text as segment_no, s.first_seq::text as first_seq, s.last_seq::text as last_seq,
      s.entry_count, s.first_at, s.last_at, s.schema_version, s.shipped_to
    from ${segments(scope)} s where s.pruned_at is null order by s.segment_no`.execute(scope.trx);
  return rows.map(toSegment);
}

/** A segment's entries in journal order (`order by j.seq`: the bigint, not its text, where 10 < 9). */
export async function readSegmentEntries(scope: TenantScope, segmentNo: number): Promise<JournalEntry[]> {
  const { rows } = await sql<{
    seq: string;
    txid: string;
    at: Date;
    table_name: string;
    op: JournalEntry['op'];
    key: Record<string, unknown>;
    row: Record<string, unknown> | null;
  }>`
    select j.seq::text as seq, j.txid::text as txid, j.at, j.table_name, j.op, j.key, j.row from ${journal(scope)} j
    where j.segment_no = ${segmentNo} order by j.seq`.execute(scope.trx);
  return rows.map((r) => ({
    seq: r.seq,
    txid: r.txid,
    at: new Date(r.at).toISOString(),
    table: r.table_name,
    op: r.op,
    key: r.key,
    row: r.row,
  }));
}

export async function markSegmentShipped(
  scope: TenantScope,
  segmentNo: number,
  location: string,
): Promise<void> {
  await sql`update ${segments(scope)} set shipped_to = array_append(shipped_to, ${location}::text)
    where segment_no = ${segmentNo} and not (${location}::text = any(shipped_to))`.execute(scope.trx);
}

/**
 * Deletes a segment's entries once every location holds it, and forgets older pruned segments (the
 * newest is kept: it tells the next segment's number and each location's position).
 */
export async function pruneSegment(scope: TenantScope, segmentNo: number): Promise<void> {
  await sql`delete from ${journal(scope)} where segment_no = ${segmentNo}`.execute(scope.trx);
  await sql`update ${segments(scope)} set pruned_at = now() where segment_no = ${segmentNo}`.execute(
    scope.trx,
  );
  await sql`delete from ${segments(scope)} where pruned_at is not null and segment_no < ${segmentNo}`.execute(
    scope.trx,
  );
}

/** Per location: its newest segment, and what of the journal it does not hold yet. */
export async function readLocationPositions(
  scope: TenantScope,
  locations: readonly string[],
): Promise<LocationPosition[]> {
  const positions: LocationPosition[] = [];
  for (const location of locations) {
    const { rows } = await sql<{
      last_segment_no: string | null;
      last_shipped_at: Date | null;
      pending: string;
      oldest_pending_at: Date | null;
    }>`
      select
        (select max(segment_no)::text from ${segments(scope)} where ${location}::text = any(shipped_to)) as last_segment_no,
        (select max(last_at) from ${segments(scope)} where ${location}::text = any(shipped_to)) as last_shipped_at,
        count(j.seq)::text as pending,
        min(j.at) as oldest_pending_at
      from ${journal(scope)} j
      left join ${segments(scope)} s on s.segment_no = j.segment_no
      where s.segment_no is null or not (${location}::text = any(s.shipped_to))`.execute(scope.trx);
    const row = rows[0];
    positions.push({
      location,
      lastSegmentNo: row?.last_segment_no ? Number(row.last_segment_no) : null,
      lastShippedAt: row?.last_shipped_at ? new Date(row.last_shipped_at) : null,
      pendingEntries: Number(row?.pending ?? 0),
      oldestPendingAt: row?.oldest_pending_at ? new Date(row.oldest_pending_at) : null,
    });
  }
  return positions;
}

export async function recordSnapshot(
  scope: TenantScope,
  snapshot: { snapshotId: string; takenAt: Date; storedIn: string[]; rowCount: number },
): Promise<void> {
  await sql`insert into ${snapshots(scope)} (snapshot_id, taken_at, stored_in, row_count)
    values (${snapshot.snapshotId}, ${snapshot.takenAt}, ${snapshot.storedIn}, ${snapshot.rowCount})`.execute(
    scope.trx,
  );
}

export async function findNewestSnapshot(
  scope: TenantScope,
): Promise<{ snapshotId: string; takenAt: Date; storedIn: string[] } | undefined> {
  const { rows } = await sql<{ snapshot_id: string; taken_at: Date; stored_in: string[] }>`
    select snapshot_id, taken_at, stored_in from ${snapshots(scope)} order by taken_at desc limit 1`.execute(
    scope.trx,
  );
  const row = rows[0];
  return row && { snapshotId: row.snapshot_id, takenAt: new Date(row.taken_at), storedIn: row.stored_in };
}

/**
 * Inside the snapshot's transaction: when it was taken, its transaction snapshot and the segment
 * position. `statement_timestamp()`, not `now()`: the snapshot is fixed at the transaction's first
 * statement, after it began, so only a time at or after that point guarantees that everything the
 * snapshot shows had committed (and so started) by then.
 */
export async function readSnapshotPosition(
  scope: TenantScope,
): Promise<{ takenAt: Date; txSnapshot: string; segmentPosition: number }> {
  const { rows } = await sql<{ taken_at: Date; tx_snapshot: string; segment_position: string }>`
    select statement_timestamp() as taken_at, txid_current_snapshot()::text as tx_snapshot,
      (select coalesce(max(segment_no), 0)::text from ${segments(scope)}) as segment_position`.execute(
    scope.trx,
  );
  const row = rows[0]!;
  return {
    takenAt: new Date(row.taken_at),
    txSnapshot: row.tx_snapshot,
    segmentPosition: Number(row.segment_position),
  };
}

/**
 * The journaled tables of a schema, parents before children (by their foreign keys), so loading
 * them in this order never violates a constraint.
 */
export async function listTablesInLoadOrder(
  trx: AnyKysely,
  schema: string,
  isIncluded: (table: string) => boolean = isJournaledTable,
): Promise<string[]> {
  const { rows } = await sql<{ table: string; parents: string[] | null }>`
    select c.relname as table,
      (select array_agg(distinct p.relname::text) from pg_catalog.pg_constraint f
         join pg_catalog.pg_class p on p.oid = f.confrelid
        where f.conrelid = c.oid and f.contype = 'f' and f.confrelid <> c.oid) as parents
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${schema} and c.relkind = 'r' order by c.relname`.execute(trx);
  const tables = rows.filter((r) => isIncluded(r.table));
  const ordered: string[] = [];
  const pending = new Map(tables.map((t) => [t.table, (t.parents ?? []).filter(isIncluded)]));
  while (pending.size > 0) {
    const ready = [...pending].filter(([, parents]) => parents.every((p) => ordered.includes(p)));
    if (ready.length === 0)
      throw new Error(`foreign keys form a cycle among ${[...pending.keys()].join(', ')}`);
    for (const [table] of ready) {
      ordered.push(table);
      pending.delete(table);
    }
  }
  return ordered;
}

/**
 * Streams a table's rows as JSON text (`row_to_json`, cheaper than `to_jsonb`; never parsed here) through a cursor,
 * `batchSize` at a time, inside the caller's transaction: memory holds two batches (one read ahead), never the table.
 */
export async function* streamTableRows(
  scope: TenantScope,
  table: string,
  batchSize: number,
): AsyncGenerator<string[]> {
  const cursor = sql.id(`backup_${table}`);
  await sql`declare ${cursor} no scroll cursor for select row_to_json(t)::text as row from ${sql.id(scope.schema, table)} t`.execute(
    scope.trx,
  );
  const fetchBatch = () => {
    const rows = sql<{ row: string }>`fetch forward ${sql.raw(String(batchSize))} from ${cursor}`
      .execute(scope.trx)
      .then((result) => result.rows.map((r) => r.row));
    // Awaited below; until then a failure must not count as unhandled.
    rows.catch(() => undefined);
    return rows;
  };
  let next: Promise<string[]> | undefined = fetchBatch();
  try {
    while (next) {
      const rows: string[] = await next;
      // The database reads the next batch while the caller compresses and seals this one.
      next = rows.length === batchSize ? fetchBatch() : undefined;
      if (rows.length > 0) yield rows;
    }
  } finally {
    // A batch still in flight (the caller stopped early) ends before its cursor is closed.
    await next?.catch(() => undefined);
    await sql`close ${cursor}`.execute(scope.trx);
  }
}

/**
 * Every row of a control-plane table as JSON text, for a control-plane snapshot (the control plane
 * is small: tenants, keys, staff, indexes; it is read whole). Session credentials are left out:
 * sessions are not backed up (a recovered service starts with everyone signed out).
 */
export async function readControlRows(trx: AnyKysely, table: string): Promise<string[]> {
  const { rows } = await sql<{ row: string }>`
    select row_to_json(t)::text as row from ${sql.id('control', table)} t
    ${table === 'credentials' ? sql`where t.kind <> 'session'` : sql``}`.execute(trx);
  return rows.map((r) => r.row);
}

/** Every tenant id the control plane has (deleted ones too): disaster recovery's check of its target. */
export async function listControlTenantIds(trx: AnyKysely): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`select id from control.tenants order by id`.execute(trx);
  return rows.map((r) => r.id);
}

/** Which tenant schemas exist (`t_<32 hex>`). */
export async function listTenantSchemas(trx: AnyKysely): Promise<Set<string>> {
  const { rows } = await sql<{ name: string }>`
    select nspname as name from pg_catalog.pg_namespace where nspname ~ '^t_[0-9a-f]{32}$'`.execute(trx);
  return new Set(rows.map((r) => r.name));
}

/**
 * After disaster recovery: the tenant's next journal segment is numbered after the last one the
 * location it was recovered from holds, so no new segment overwrites an old one there.
 */
export async function setSegmentPosition(
  trx: AnyKysely,
  schema: string,
  segmentNo: number,
  locations: readonly string[],
): Promise<void> {
  if (segmentNo === 0) return;
  await sql`insert into ${sql.id(schema, '_backup_segments')}
      (segment_no, first_seq, last_seq, entry_count, first_at, last_at, schema_version, shipped_to, pruned_at)
    values (${segmentNo}, 0, 0, 0, now(), now(), '', ${[...locations]}::text[], now())`.execute(trx);
}

/**
 * Per journaled table: its row count and an MD5 over its rows' text in sorted order. Two schemas
 * with the same rows have the same checksums (the schema name is in no row). Restore drills compare
 * scratch restores with these; MD5 is fine here: it detects accidents, not an adversary.
 */
export async function checksumTables(
  trx: AnyKysely,
  schema: string,
): Promise<Record<string, { rows: number; md5: string }>> {
  const sums: Record<string, { rows: number; md5: string }> = {};
  for (const table of await listTablesInLoadOrder(trx, schema)) {
    const { rows } = await sql<{ n: number; md5: string }>`
      select count(*)::int as n, coalesce(md5(string_agg(t::text, E'\n' order by t::text)), '') as md5
      from ${sql.id(schema, table)} t`.execute(trx);
    sums[table] = { rows: rows[0]?.n ?? 0, md5: rows[0]?.md5 ?? '' };
  }
  return sums;
}

export interface TableShape {
  keys: string[];
  /** Columns an update may set (everything but `generated always` identity columns). */
  updatable: string[];
  /** Identity columns, whose sequences a restore moves past the restored values. */
  identities: string[];
}

export async function readTableShapes(trx: AnyKysely, schema: string): Promise<Map<string, TableShape>> {
  const { rows } = await sql<{ table: string; column: string; is_key: boolean; identity: string }>`
    select c.relname as table, a.attname as column, a.attidentity::text as identity,
      exists (select 1 from pg_catalog.pg_index i where i.indrelid = c.oid and i.indisprimary
              and a.attnum = any(i.indkey::int2[])) as is_key
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    where n.nspname = ${schema} and c.relkind = 'r' order by c.relname, a.attnum`.execute(trx);
  const shapes = new Map<string, TableShape>();
  for (const row of rows) {
    const shape = shapes.get(row.table) ?? { keys: [], updatable: [], identities: [] };
    if (row.is_key) shape.keys.push(row.column);
    if (row.identity === 'a') shape.identities.push(row.column);
    else shape.updatable.push(row.column);
    if (row.identity === 'd') shape.identities.push(row.column);
    shapes.set(row.table, shape);
  }
  return shapes;
}

/** Inserts rows (JSON objects as `to_jsonb` made them) into a table of a schema being restored. */
export async function insertRows(
  trx: AnyKysely,
  schema: string,
  table: string,
  rows: unknown[],
): Promise<void> {
  if (rows.length === 0) return;
  const target = sql.id(schema, table);
  await sql`insert into ${target} overriding system value
    select * from jsonb_populate_recordset(null::${target}, ${JSON.stringify(rows)}::jsonb)`.execute(trx);
}

/**
 * Applies journal entries of one table and one operation whose keys are all different (so their
 * order among themselves does not matter) as one statement. Update and delete find rows by the key
 * the entry recorded (the key before the change).
 */
export async function applyJournalBatch(
  trx: AnyKysely,
  schema: string,
  table: string,
  shape: TableShape,
  op: JournalEntry['op'],
  entries: readonly JournalEntry[],
): Promise<void> {
  if (entries.length === 0) return;
  const target = sql.id(schema, table);
  if (op === 'insert') {
    await insertRows(
      trx,
      schema,
      table,
      entries.map((e) => e.row),
    );
    return;
  }
  const keyMatch = sql.join(
    shape.keys.map((k) => sql`t.${sql.id(k)} = k.${sql.id(k)}`),
    sql` and `,
  );
  if (op === 'delete') {
    await sql`delete from ${target} t
      using jsonb_populate_recordset(null::${target}, ${JSON.stringify(entries.map((e) => e.key))}::jsonb) k
      where ${keyMatch}`.execute(trx);
    return;
  }
  const columns = sql.join(shape.updatable.map((c) => sql.id(c)));
  const values = sql.join(shape.updatable.map((c) => sql`n.${sql.id(c)}`));
  const payload = JSON.stringify(entries.map((e) => ({ key: e.key, row: e.row })));
  await sql`update ${target} t set (${columns}) = row(${values})
    from jsonb_array_elements(${payload}::jsonb) e
    cross join lateral jsonb_populate_record(null::${target}, e -> 'key') k
    cross join lateral jsonb_populate_record(null::${target}, e -> 'row') n
    where ${keyMatch}`.execute(trx);
}

/** Moves each identity sequence past the highest restored value, so new rows get fresh numbers. */
export async function resetIdentitySequences(
  trx: AnyKysely,
  schema: string,
  shapes: Map<string, TableShape>,
): Promise<void> {
  for (const [table, shape] of shapes) {
    for (const column of shape.identities) {
      await sql`select setval(pg_get_serial_sequence(${`${schema}.${table}`}, ${column}),
        coalesce((select max(${sql.id(column)}) from ${sql.id(schema, table)}), 0) + 1, false)`.execute(trx);
    }
  }
}

/**
 * Gathers planner statistics for tables loaded in this transaction. Autovacuum cannot see a table
 * that is not committed yet, and without statistics the journal replay's keyed updates and deletes
 * scanned the whole table once per batch: a restore of 200,000 rows and 100,000 entries took 14
 * minutes instead of seconds.
 */
export async function analyzeTables(
  trx: AnyKysely,
  schema: string,
  tables: readonly string[],
): Promise<void> {
  for (const table of tables) await sql`analyze ${sql.id(schema, table)}`.execute(trx);
}

export async function countRows(trx: AnyKysely, schema: string, table: string): Promise<number> {
  const { rows } = await sql<{ n: string }>`select count(*)::text as n from ${sql.id(schema, table)}`.execute(
    trx,
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * Turns the journal triggers of a schema being restored off (or back on). Loading a restore is not a
 * change to journal: the restored tenant's backups start from its own first snapshot. The schema is
 * new and not yet committed, so this DDL is invisible to everyone else.
 */
export function setJournalTriggers(trx: AnyKysely, schema: string, enabled: boolean): Promise<void> {
  return setTriggers(trx, schema, [journalTriggerName], enabled);
}

/** Enables or disables every trigger of `schema`'s tables named one of `names`. */
async function setTriggers(
  trx: AnyKysely,
  schema: string,
  names: readonly string[],
  enabled: boolean,
): Promise<void> {
  const { rows } = await sql<{ table: string; trigger: string }>`
    select c.relname as table, t.tgname as trigger from pg_catalog.pg_trigger t
    join pg_catalog.pg_class c on c.oid = t.tgrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${schema} and t.tgname = any(${[...names]}::text[])`.execute(trx);
  for (const { table, trigger } of rows) {
    await sql`alter table ${sql.id(schema, table)} ${sql.raw(enabled ? 'enable' : 'disable')} trigger ${sql.id(trigger)}`.execute(
      trx,
    );
  }
}

/**
 * Turns the usage counters' triggers of a schema being restored off or on. Loaded row by row they
 * updated the 16 counter rows once per row, all in the restore's one transaction, where no old row
 * version can be cleaned up: each update walked a longer chain (quadratic; a restore of 200,000 rows
 * spent minutes there). The restore recounts once instead (`recountUsage`).
 */
export function setUsageTriggers(trx: AnyKysely, schema: string, enabled: boolean): Promise<void> {
  return setTriggers(trx, schema, ['count_record_usage', 'count_attachment_usage'], enabled);
}

/** Sets the usage counters to what the tables hold: the totals in slot 0, the other slots zero. */
export async function recountUsage(trx: AnyKysely, schema: string): Promise<void> {
  const { rows } = await sql<{ exists: boolean }>`
    select to_regclass(${`${schema}.usage_counters`}) is not null as exists`.execute(trx);
  if (!rows[0]?.exists) return;
  await sql`update ${sql.id(schema, 'usage_counters')} set
      records = case when slot = 0 then (select count(*) from ${sql.id(schema, 'records')}) else 0 end,
      record_bytes = case when slot = 0
        then (select coalesce(sum(pg_column_size(data)), 0) from ${sql.id(schema, 'records')}) else 0 end,
      attachment_bytes = case when slot = 0
        then (select coalesce(sum(size_bytes), 0) from ${sql.id(schema, 'attachment_versions')} where purged_at is null)
        else 0 end`.execute(trx);
}

/** Empties the restored tenant's own journal (nothing should be there; a guard for the invariant). */
export async function clearJournal(trx: AnyKysely, schema: string): Promise<void> {
  await sql`delete from ${sql.id(schema, '_journal')}`.execute(trx);
}

export interface RestoredObjectRow {
  attachmentId: string;
  version: number;
  objectKey: string;
  keyVersion: number;
  chunkSizeBytes: number;
  retiredAt: Date | null;
}

/** Attachment versions of a restored schema whose objects were not purged: the files to bring back. */
export async function listLiveObjectVersions(trx: AnyKysely, schema: string): Promise<RestoredObjectRow[]> {
  const { rows } = await sql<{
    attachment_id: string;
    version: number;
    object_key: string;
    key_version: number;
    chunk_size_bytes: number;
    retired_at: Date | null;
  }>`select attachment_id, version, object_key, key_version, chunk_size_bytes, retired_at
     from ${sql.id(schema, 'attachment_versions')} where purged_at is null order by attachment_id, version`.execute(
    trx,
  );
  return rows.map((r) => ({
    attachmentId: r.attachment_id,
    version: r.version,
    objectKey: r.object_key,
    keyVersion: r.key_version,
    chunkSizeBytes: r.chunk_size_bytes,
    retiredAt: r.retired_at ? new Date(r.retired_at) : null,
  }));
}

/**
 * A restored version whose file no backup holds any more because it was retired longer ago than the
 * restore window (retention deleted it, as the attachment store purged it): recorded as purged.
 */
export async function setObjectPurged(trx: AnyKysely, schema: string, row: RestoredObjectRow): Promise<void> {
  await sql`update ${sql.id(schema, 'attachment_versions')} set purged_at = now()
    where attachment_id = ${row.attachmentId} and version = ${row.version}`.execute(trx);
}

/** Which of `objectKeys` the tenant's attachment store has purged: their backup copies may go too. */
export async function findPurgedObjectKeys(
  scope: TenantScope,
  objectKeys: readonly string[],
): Promise<Set<string>> {
  if (objectKeys.length === 0) return new Set();
  const { rows } = await sql<{ object_key: string }>`
    select object_key from ${sql.id(scope.schema, 'attachment_versions')}
    where purged_at is not null and object_key = any(${[...objectKeys]}::text[])`.execute(scope.trx);
  return new Set(rows.map((r) => r.object_key));
}

/** The object was re-sealed under the new tenant's key: its version row says which key. */
export async function setObjectKeyVersion(
  trx: AnyKysely,
  schema: string,
  row: RestoredObjectRow,
  keyVersion: number,
): Promise<void> {
  await sql`update ${sql.id(schema, 'attachment_versions')} set key_version = ${keyVersion}
    where attachment_id = ${row.attachmentId} and version = ${row.version}`.execute(trx);
}

/** Backup bookkeeping a tenant's schema carries: its unshipped journal and what its locations hold. */
const bookkeepingTables = ['_journal', '_backup_segments', '_backup_snapshots'] as const;

/**
 * Moves a tenant's backup bookkeeping from the schema being replaced to the one replacing it (an
 * in-place restore's swap, or its undo), so shipping goes on where it was: entries not yet in every
 * location still ship, and segments keep their numbers. Both schemas are at one version. The
 * journal's identity moves past the carried entries.
 */
export async function carryBackupBookkeeping(trx: AnyKysely, from: string, to: string): Promise<void> {
  for (const table of bookkeepingTables) {
    await sql`delete from ${sql.id(to, table)}`.execute(trx);
    await sql`insert into ${sql.id(to, table)} overriding system value
      select * from ${sql.id(from, table)}`.execute(trx);
  }
  await sql`select setval(pg_get_serial_sequence(${`${to}._journal`}, 'seq'),
    coalesce((select max(seq) from ${sql.id(to, '_journal')}), 0) + 1, false)`.execute(trx);
}

/** The journal's record of an in-place restore (a marker a replay cannot pass; restore.service.ts). */
export const inPlaceRestoreMarkerTable = '_restores';

/**
 * Appends the marker of an in-place restore (or its undo) to the journal of the schema now serving
 * the tenant. Its time is the swap's (clock_timestamp(), not the transaction's start): every entry of
 * the replaced schema is older, every later change newer.
 */
export async function journalInPlaceRestore(
  trx: AnyKysely,
  schema: string,
  detail: { restoredTo: string } | { undone: true },
): Promise<void> {
  const marker = JSON.stringify(detail);
  await sql`insert into ${sql.id(schema, '_journal')} (txid, at, table_name, op, key, row)
    values (txid_current(), clock_timestamp(), ${inPlaceRestoreMarkerTable}, 'insert', ${marker}::jsonb, ${marker}::jsonb)`.execute(
    trx,
  );
}

export async function schemaExists(trx: AnyKysely, schema: string): Promise<boolean> {
  const { rows } = await sql<{ found: boolean }>`
    select exists (select 1 from pg_catalog.pg_namespace where nspname = ${schema}) as found`.execute(trx);
  return rows[0]?.found === true;
}

export async function dropSchema(trx: AnyKysely, schema: string): Promise<void> {
  await sql`drop schema ${sql.id(schema)} cascade`.execute(trx);
}
