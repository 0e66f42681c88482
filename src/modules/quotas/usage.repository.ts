import { type ExpressionBuilder, sql } from 'kysely';
import type { AnyKysely } from '../../db/database.ts';
import { type TenantTables, tenantDb } from '../../db/tenant-tables.ts';

/** What a tenant stores, from its usage counters (kept by triggers in the same transactions). */
export interface StoredUsage {
  records: number;
  recordBytes: number;
  attachmentBytes: number;
}

// biome-ignore lint/suspicious/noExplicitAny: any query's builder; the subqueries name only their own table.
type AnyExpressionBuilder = ExpressionBuilder<any, any>;

/**
 * The counters summed as scalar subqueries, for a repository that wants the usage in the same
 * statement as its own work (a record create checks its quota without another round trip). Built
 * with the query builder, so `withSchema` qualifies the table like every other.
 */
export function usageColumns(outer: AnyExpressionBuilder) {
  const eb = outer as ExpressionBuilder<TenantTables, never>;
  const total = (column: 'records' | 'record_bytes' | 'attachment_bytes') =>
    eb.selectFrom('usage_counters').select(sql<string>`coalesce(sum(${sql.ref(column)}), 0)`.as('total'));
  return [
    total('records').as('usage_records'),
    total('record_bytes').as('usage_record_bytes'),
    total('attachment_bytes').as('usage_attachment_bytes'),
  ];
}

export function usageOf(row: {
  usage_records: string | null;
  usage_record_bytes: string | null;
  usage_attachment_bytes: string | null;
}): StoredUsage {
  return {
    records: Number(row.usage_records),
    recordBytes: Number(row.usage_record_bytes),
    attachmentBytes: Number(row.usage_attachment_bytes),
  };
}

export const usageRepository = {
  /** Sums the counter slots: 16 rows, one statement. */
  async read(db: AnyKysely): Promise<StoredUsage> {
    const row = await tenantDb(db)
      .selectFrom('usage_counters')
      .select([
        sql<string>`coalesce(sum(records), 0)`.as('records'),
        sql<string>`coalesce(sum(record_bytes), 0)`.as('record_bytes'),
        sql<string>`coalesce(sum(attachment_bytes), 0)`.as('attachment_bytes'),
      ])
      .executeTakeFirstOrThrow();
    return {
      records: Number(row.records),
      recordBytes: Number(row.record_bytes),
      attachmentBytes: Number(row.attachment_bytes),
    };
  },
};
