import { type ColumnType, type Kysely, type Selectable, sql } from 'kysely';
import type { AnyKysely } from '../../db/database.ts';
import { assertTenantSchemaName } from '../../db/tenant-schema.ts';
import type { TenantTables } from '../../db/tenant-tables.ts';
import { dollarQuoted } from '../../db/with-tenant.ts';
import type {
  ActorKind,
  AuditEntry,
  AuditOutcome,
  CanonicalAuditFields,
  ChainedAuditEntry,
} from './audit-chain.ts';
import { genesisHash } from './audit-chain.ts';

/** The audit tables, the same in a tenant schema and in `control` (db/migrations/audit-log-ddl.ts). */
interface AuditTables {
  audit_log: AuditLogTable;
  audit_checkpoints: AuditCheckpointsTable;
}

interface AuditLogTable {
  /** bigint: read back as a string on Postgres. */
  position: ColumnType<string | number, number, never>;
  at: Date;
  /** Only in the platform chain (`control.audit_log`). */
  tenant_id?: string | null;
  actor_kind: ActorKind;
  actor_id: string | null;
  api_key_id: string | null;
  grant_id: string | null;
  action: string;
  resource_type: string | null;
  resource_id: string | null;
  outcome: AuditOutcome;
  status_code: number | null;
  error_code: string | null;
  request_id: string | null;
  ip: string | null;
  user_agent: string | null;
  changes: string[] | null;
  prev_hash: string;
  hash: string;
}

interface AuditCheckpointsTable {
  position: ColumnType<string | number, number, never>;
  head_hash: string;
  at: Date;
  key_id: string;
  signature: string;
}

/** An entry as verify reads it: its canonical fields (time as text), position and links. */
export type StoredAuditEntry = CanonicalAuditFields & { position: number; prevHash: string; hash: string };

export interface StoredCheckpoint {
  position: number;
  headHash: string;
  at: Date;
  keyId: string;
  signature: string;
}

/** Which chain a handle is bound to: a tenant's (its schema) or the platform's (`control`). */
export interface ChainHandle {
  db: AnyKysely;
  /** The tenant the chain belongs to; null for the platform chain. */
  tenantId: string | null;
}

/** What the listing and an export may narrow the log to; all must hold. */
export interface AuditFilters {
  from?: Date | undefined;
  to?: Date | undefined;
  actorId?: string | undefined;
  /** Entries made under one support grant: what that grant did. */
  grantId?: string | undefined;
  action?: string | undefined;
  resourceType?: string | undefined;
  resourceId?: string | undefined;
  outcome?: AuditOutcome | undefined;
}

/**
 * One page of the log by keyset on chain position: newest first below `beforePosition` (the
 * listing), or oldest first after `afterPosition` through `throughPosition` (an export). Never an
 * OFFSET: each page starts from the previous page's last position, by the primary key.
 */
export type AuditQuery = AuditFilters & { limit: number } & (
    | { order?: 'newest'; beforePosition?: number | undefined }
    | { order: 'oldest'; afterPosition: number; throughPosition: number }
  );

const lockNamespace = 0x53524155; // 'SRAU'

function tables(db: AnyKysely): Kysely<AuditTables> {
  return db as Kysely<AuditTables>;
}

/** A tenant transaction: its bare handle and its schema (the pending table is named with it). */
interface PendingScope {
  trx: AnyKysely;
  schema: string;
}

const pendingTable = (scope: PendingScope) => sql.id(scope.schema, 'audit_pending');

export const auditRepository = {
  /**
   * Serializes appends to one chain until the transaction ends, so positions stay gapless and each
   * entry links to the one committed before it. The key is the tenant id's first 32 bits (0 for the
   * platform chain): two tenants sharing a key only queue behind each other, never mix chains.
   */
  async lockChain(chain: ChainHandle): Promise<void> {
    const key = chain.tenantId
      ? Buffer.from(chain.tenantId.replaceAll('-', '').slice(0, 8), 'hex').readInt32BE(0)
      : 0;
    await sql`select pg_advisory_xact_lock(${lockNamespace}::int, ${key}::int)`.execute(chain.db);
  },

  /** The last entry, or (all pruned) the last checkpoint, or the genesis. Call under `lockChain`. */
  async head(chain: ChainHandle): Promise<{ position: number; hash: string }> {
    const last = await tables(chain.db)
      .selectFrom('audit_log')
      .select(['position', 'hash'])
      .orderBy('position', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (last) return { position: Number(last.position), hash: last.hash };
    const checkpoint = await auditRepository.latestCheckpoint(chain);
    return checkpoint
      ? { position: checkpoint.position, hash: checkpoint.headHash }
      : { position: 0, hash: genesisHash };
  },

  /** The first position after `afterPosition` that holds an entry, if any. */
  async nextPosition(chain: ChainHandle, afterPosition: number): Promise<number | undefined> {
    const row = await tables(chain.db)
      .selectFrom('audit_log')
      .select('position')
      .where('position', '>', afterPosition)
      .orderBy('position')
      .limit(1)
      .executeTakeFirst();
    return row ? Number(row.position) : undefined;
  },

  /**
   * One statement of one shape whatever the number of entries: each column as one array parameter,
   * unnested into rows (a VALUES list of 19 parameters per entry cost the batch writer more to build,
   * and Postgres more to parse, than writing the rows did).
   */
  async insert(chain: ChainHandle, entries: readonly ChainedAuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const column = <T>(pick: (entry: ChainedAuditEntry) => T): T[] => entries.map(pick);
    const platform = chain.tenantId === null;
    const columns = [
      'position',
      'at',
      ...entryColumns,
      ...(platform ? (['tenant_id'] as const) : []),
    ] as const;
    // The table through the query builder, so the handle's schema applies; the rows from unnest.
    await tables(chain.db)
      .insertInto('audit_log')
      .columns(columns)
      .expression(
        sql`select position, at, actor_kind, actor_id, api_key_id, grant_id, action, resource_type,
          resource_id, outcome, status_code, error_code, request_id, ip, user_agent, changes::text[],
          prev_hash, hash${platform ? sql`, tenant_id` : sql``}
        from unnest(
          ${column((e) => e.position)}::bigint[], ${column((e) => e.at.toISOString())}::timestamptz[],
          ${column((e) => e.actorKind)}::text[], ${column((e) => e.actorId)}::text[],
          ${column((e) => e.apiKeyId)}::uuid[], ${column((e) => e.grantId)}::uuid[],
          ${column((e) => e.action)}::text[], ${column((e) => e.resourceType)}::text[],
          ${column((e) => e.resourceId)}::text[], ${column((e) => e.outcome)}::text[],
          ${column((e) => e.statusCode)}::integer[], ${column((e) => e.errorCode)}::text[],
          ${column((e) => e.requestId)}::text[], ${column((e) => e.ip)}::text[],
          ${column((e) => e.userAgent)}::text[], ${column((e) => textArrayLiteral(e.changes))}::text[],
          ${column((e) => e.prevHash)}::text[], ${column((e) => e.hash)}::text[],
          ${column((e) => e.tenantId)}::uuid[]
        ) as entry(position, at, actor_kind, actor_id, api_key_id, grant_id, action, resource_type,
          resource_id, outcome, status_code, error_code, request_id, ip, user_agent, changes,
          prev_hash, hash, tenant_id)`,
      )
      .execute();
  },

  /**
   * The same entries as `storedRange`, each as its position, links and one record literal of the
   * other columns (audit-stored-row.ts reads it): what verify reads first, being far cheaper to
   * receive. `at` comes in the server's own text form, which costs Postgres least.
   */
  async recordRange(
    chain: ChainHandle,
    afterPosition: number,
    throughPosition: number,
  ): Promise<Array<{ position: number; prevHash: string; hash: string; record: string }>> {
    const record =
      chain.tenantId === null
        ? sql<string>`row(at, actor_kind, actor_id, api_key_id, grant_id, action, resource_type, resource_id, outcome, status_code, error_code, request_id, ip, user_agent, changes, tenant_id)::text`
        : sql<string>`row(at, actor_kind, actor_id, api_key_id, grant_id, action, resource_type, resource_id, outcome, status_code, error_code, request_id, ip, user_agent, changes)::text`;
    return tables(chain.db)
      .selectFrom('audit_log')
      .select([
        sql<number>`position::float8`.as('position'),
        'prev_hash as prevHash',
        'hash',
        record.as('record'),
      ])
      .where('position', '>', afterPosition)
      .where('position', '<=', throughPosition)
      .orderBy('position')
      .execute();
  },

  /**
   * The entries with positions in (`afterPosition`, `throughPosition`], in chain order, with every
   * field under its canonical name and the time already as ISO 8601 text: what verify falls back
   * to for a page whose record literals did not all check out. A bounded
   * range rather than a LIMIT, so the planner reads only those rows by the primary key even when
   * its statistics are stale (with `position > x … limit n` it sorted the whole rest of the chain).
   */
  async storedRange(
    chain: ChainHandle,
    afterPosition: number,
    throughPosition: number,
  ): Promise<StoredAuditEntry[]> {
    const rows = (await tables(chain.db)
      .selectFrom('audit_log')
      .select([
        sql<number>`position::float8`.as('position'),
        ...(chain.tenantId === null ? (['tenant_id as tenantId'] as const) : []),
        sql<string>`to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`.as('at'),
        'actor_kind as actorKind',
        'actor_id as actorId',
        'api_key_id as apiKeyId',
        'grant_id as grantId',
        'action',
        'resource_type as resourceType',
        'resource_id as resourceId',
        'outcome',
        'status_code as statusCode',
        'error_code as errorCode',
        'request_id as requestId',
        'ip',
        'user_agent as userAgent',
        'changes',
        'prev_hash as prevHash',
        'hash',
      ])
      .where('position', '>', afterPosition)
      .where('position', '<=', throughPosition)
      .orderBy('position')
      .execute()) as StoredAuditEntry[];
    // A tenant's chain names its tenant in every entry: added here rather than sent a million times.
    if (chain.tenantId !== null) for (const row of rows) row.tenantId = chain.tenantId;
    return rows;
  },

  /**
   * A write's entry, committed with the write; `sealPending` moves it into the chain. No lock. The
   * statement adds `entry` to the pending entries if the caller's transaction wrote anything (Postgres
   * assigned it a transaction id; checked before this insert gets one), and returns a row when it did.
   * It takes no parameters: it is sent in one message with `commit` (`finalStatement` of withTenant).
   */
  insertPendingIfWroteStatement(scope: PendingScope, entry: AuditEntry): string {
    assertTenantSchemaName(scope.schema);
    return `insert into ${scope.schema}.audit_pending (entry)
      select ${dollarQuoted(JSON.stringify(entry))}::jsonb where txid_current_if_assigned() is not null
      returning id`;
  },

  /** Pending entries in the order they were written (call under `lockChain`). */
  async pending(scope: PendingScope, limit: number): Promise<Array<{ id: number; entry: AuditEntry }>> {
    const { rows } = await sql<{ id: string; entry: AuditEntry & { at: string } }>`
      select id, entry from ${pendingTable(scope)} order by id limit ${limit}`.execute(scope.trx);
    return rows.map((row) => ({ id: Number(row.id), entry: { ...row.entry, at: new Date(row.entry.at) } }));
  },

  async deletePending(scope: PendingScope, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await sql`delete from ${pendingTable(scope)} where id = any(${ids}::bigint[])`.execute(scope.trx);
  },

  /** What one support grant did: its entries counted by action and outcome. */
  async grantActivity(
    chain: ChainHandle,
    grantId: string,
  ): Promise<Array<{ action: string; outcome: string; count: number }>> {
    const rows = await tables(chain.db)
      .selectFrom('audit_log')
      .select(['action', 'outcome', sql<string>`count(*)`.as('count')])
      .where('grant_id', '=', grantId)
      .groupBy(['action', 'outcome'])
      .orderBy('action')
      .orderBy('outcome')
      .execute();
    return rows.map((row) => ({ action: row.action, outcome: row.outcome, count: Number(row.count) }));
  },

  /**
   * A page of the log, filtered, by keyset on position (`AuditQuery`): the one query behind the
   * listing and exports. The time comes as ISO 8601 text in UTC with milliseconds (what entries are
   * written with): parsing it is several times cheaper than the driver's timestamptz parser.
   */
  async search(chain: ChainHandle, query: AuditQuery): Promise<ChainedAuditEntry[]> {
    let select = tables(chain.db)
      .selectFrom('audit_log')
      .select(chainColumns(chain))
      .select(sql<string>`to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`.as('at_iso'));
    if (query.from) select = select.where('at', '>=', query.from);
    if (query.to) select = select.where('at', '<', query.to);
    if (query.actorId) select = select.where('actor_id', '=', query.actorId);
    if (query.grantId) select = select.where('grant_id', '=', query.grantId);
    if (query.action) select = select.where('action', '=', query.action);
    if (query.resourceType) select = select.where('resource_type', '=', query.resourceType);
    if (query.resourceId) select = select.where('resource_id', '=', query.resourceId);
    if (query.outcome) select = select.where('outcome', '=', query.outcome);
    if (query.order === 'oldest')
      // Bounded on both sides (the export's end is the head when it began), so a page is one range
      // of the primary key, however many entries are appended meanwhile.
      select = select
        .where('position', '>', query.afterPosition)
        .where('position', '<=', query.throughPosition)
        .orderBy('position', 'asc');
    else {
      if (query.beforePosition !== undefined) select = select.where('position', '<', query.beforePosition);
      select = select.orderBy('position', 'desc');
    }
    const rows = await select.limit(query.limit).execute();
    return rows.map((row) => toEntry({ ...row, at: new Date(row.at_iso) }, chain.tenantId));
  },

  async checkpoints(chain: ChainHandle): Promise<StoredCheckpoint[]> {
    const rows = await tables(chain.db)
      .selectFrom('audit_checkpoints')
      .selectAll()
      .orderBy('position')
      .execute();
    return rows.map(toCheckpoint);
  },

  async latestCheckpoint(chain: ChainHandle): Promise<StoredCheckpoint | undefined> {
    const row = await tables(chain.db)
      .selectFrom('audit_checkpoints')
      .selectAll()
      .orderBy('position', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && toCheckpoint(row);
  },

  /**
   * Where a prune may cut: the newest checkpoint sealed before `cutoff` that still has entries at or
   * before it, and is not the head (the chain always keeps its last entry, so a verifier can tell a
   * pruned start from a cut-off tail).
   */
  async pruneBoundary(chain: ChainHandle, cutoff: Date): Promise<StoredCheckpoint | undefined> {
    const row = await tables(chain.db)
      .selectFrom('audit_checkpoints as c')
      .selectAll('c')
      .where('c.at', '<', cutoff)
      .where((eb) =>
        eb.exists(
          eb.selectFrom('audit_log as l').select('l.position').whereRef('l.position', '<=', 'c.position'),
        ),
      )
      .where((eb) =>
        eb.exists(
          eb.selectFrom('audit_log as l').select('l.position').whereRef('l.position', '>', 'c.position'),
        ),
      )
      .orderBy('c.position', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && toCheckpoint(row);
  },

  /**
   * Deletes the sealed segment up to `position` (a checkpoint's). Runs on the owner connection: the
   * tenant role has no DELETE here, and the append-only trigger lets a row go only when the
   * transaction names a checkpointed position at or after it.
   */
  async pruneThrough(chain: ChainHandle, position: number): Promise<number> {
    await sql`select set_config('strongroom.audit_prune_through', ${String(position)}, true)`.execute(
      chain.db,
    );
    const result = await tables(chain.db)
      .deleteFrom('audit_log')
      .where('position', '<=', position)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  },

  /** The tenant's audit retention in days, if it set one (`settings` key `audit`). */
  async retentionDays(db: AnyKysely): Promise<number | undefined> {
    const row = await (db as Kysely<TenantTables>)
      .selectFrom('settings')
      .select('value')
      .where('key', '=', 'audit')
      .executeTakeFirst();
    const days = (row?.value as { retentionDays?: unknown } | undefined)?.retentionDays;
    return typeof days === 'number' && Number.isInteger(days) ? days : undefined;
  },

  async writeRetentionDays(db: AnyKysely, days: number): Promise<void> {
    const value = JSON.stringify({ retentionDays: days });
    await (db as Kysely<TenantTables>)
      .insertInto('settings')
      .values({ key: 'audit', value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value, updated_at: sql`now()` }))
      .execute();
  },

  /** Idempotent: a checkpoint of the same position (written by another node) is kept. */
  async insertCheckpoint(chain: ChainHandle, checkpoint: StoredCheckpoint): Promise<void> {
    await tables(chain.db)
      .insertInto('audit_checkpoints')
      .values({
        position: checkpoint.position,
        head_hash: checkpoint.headHash,
        at: checkpoint.at,
        key_id: checkpoint.keyId,
        signature: checkpoint.signature,
      })
      .onConflict((oc) => oc.column('position').doNothing())
      .execute();
  },
};

/**
 * A text array as a Postgres array literal (`{"a","b"}`), each element quoted with `"` and `\`
 * escaped, or null: how one row's `changes` travels inside the array of every row's.
 */
function textArrayLiteral(values: readonly (string | null)[] | null): string | null {
  if (values === null) return null;
  const items = values.map((value) =>
    value === null ? 'NULL' : `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`,
  );
  return `{${items.join(',')}}`;
}

/** The columns of an entry but its position, time and (platform chain) tenant, in table order. */
const entryColumns = [
  'actor_kind',
  'actor_id',
  'api_key_id',
  'grant_id',
  'action',
  'resource_type',
  'resource_id',
  'outcome',
  'status_code',
  'error_code',
  'request_id',
  'ip',
  'user_agent',
  'changes',
  'prev_hash',
  'hash',
] as const;

/** Every column but `at` (read as text by `search`). */
function chainColumns(chain: ChainHandle) {
  return ['position', ...(chain.tenantId === null ? (['tenant_id'] as const) : []), ...entryColumns] as const;
}

function toEntry(row: Selectable<AuditLogTable>, tenantId: string | null): ChainedAuditEntry {
  return {
    position: Number(row.position),
    at: new Date(row.at),
    tenantId: tenantId ?? row.tenant_id ?? null,
    actorKind: row.actor_kind,
    actorId: row.actor_id,
    apiKeyId: row.api_key_id,
    grantId: row.grant_id,
    action: row.action,
    resourceType: row.resource_type,
    resourceId: row.resource_id,
    outcome: row.outcome,
    statusCode: row.status_code,
    errorCode: row.error_code,
    requestId: row.request_id,
    ip: row.ip,
    userAgent: row.user_agent,
    changes: row.changes,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

function toCheckpoint(row: Selectable<AuditCheckpointsTable>): StoredCheckpoint {
  return {
    position: Number(row.position),
    headHash: row.head_hash,
    at: new Date(row.at),
    keyId: row.key_id,
    signature: row.signature,
  };
}
