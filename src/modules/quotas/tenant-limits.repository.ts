import type { Kysely } from 'kysely';
import type { ControlTables } from '../../db/control-tables.ts';

/** Limits an operator set for one tenant; null means the platform default. */
export interface LimitOverrides {
  requestsPerSecond: number | null;
  concurrentRequests: number | null;
  maxRecords: number | null;
  maxStorageBytes: number | null;
}

export const noOverrides: LimitOverrides = {
  requestsPerSecond: null,
  concurrentRequests: null,
  maxRecords: null,
  maxStorageBytes: null,
};

/** Per-tenant limits and daily API-call counts, in the control plane. */
export class TenantLimitsRepository {
  readonly #control: Kysely<ControlTables>;

  constructor(control: Kysely<ControlTables>) {
    this.#control = control;
  }

  async find(tenantId: string): Promise<LimitOverrides | undefined> {
    const row = await this.#control
      .selectFrom('tenant_limits')
      .select(['requests_per_second', 'concurrent_requests', 'max_records', 'max_storage_bytes'])
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      requestsPerSecond: row.requests_per_second,
      concurrentRequests: row.concurrent_requests,
      maxRecords: row.max_records === null ? null : Number(row.max_records),
      maxStorageBytes: row.max_storage_bytes === null ? null : Number(row.max_storage_bytes),
    };
  }

  async save(tenantId: string, limits: LimitOverrides, staffId: string | undefined): Promise<void> {
    const values = {
      requests_per_second: limits.requestsPerSecond,
      concurrent_requests: limits.concurrentRequests,
      max_records: limits.maxRecords,
      max_storage_bytes: limits.maxStorageBytes,
      updated_at: new Date(),
      updated_by: staffId ?? null,
    };
    await this.#control
      .insertInto('tenant_limits')
      .values({ tenant_id: tenantId, ...values })
      .onConflict((oc) => oc.column('tenant_id').doUpdateSet(values))
      .execute();
  }

  /** Adds each node's counts to the day's totals, in one statement. */
  async addApiCalls(counts: ReadonlyArray<{ tenantId: string; day: string; calls: number }>): Promise<void> {
    if (counts.length === 0) return;
    await this.#control
      .insertInto('tenant_api_calls')
      .values(counts.map((c) => ({ tenant_id: c.tenantId, day: c.day, calls: c.calls })))
      .onConflict((oc) =>
        oc.columns(['tenant_id', 'day']).doUpdateSet((eb) => ({
          calls: eb('tenant_api_calls.calls', '+', eb.ref('excluded.calls')),
        })),
      )
      .execute();
  }

  /** API calls per UTC day since `fromDay` (inclusive), oldest first. */
  async apiCalls(tenantId: string, fromDay: string): Promise<Array<{ day: string; calls: number }>> {
    const rows = await this.#control
      .selectFrom('tenant_api_calls')
      .select((eb) => [eb.cast<string>('day', 'text').as('day'), 'calls'])
      .where('tenant_id', '=', tenantId)
      .where('day', '>=', fromDay)
      .orderBy('day')
      .execute();
    return rows.map((row) => ({ day: row.day, calls: Number(row.calls) }));
  }
}
