import type { Clock } from '../../platform/clock.ts';
import type { TenantLimitsRepository } from './tenant-limits.repository.ts';

/**
 * Counts each tenant's API calls in this process and adds them to the per-day totals in the control
 * plane on `flush` (the server flushes every few seconds and on shutdown). A crash loses at most the
 * counts since the last flush; the counts are for metering, never for access decisions.
 */
export class ApiCallMeter {
  readonly #repository: TenantLimitsRepository;
  readonly #clock: Clock;
  /** `<day> <tenant id>` → calls not yet written. */
  #pending = new Map<string, number>();

  constructor(deps: { repository: TenantLimitsRepository; clock: Clock }) {
    this.#repository = deps.repository;
    this.#clock = deps.clock;
  }

  count(tenantId: string): void {
    const key = `${this.#clock.now().toISOString().slice(0, 10)} ${tenantId}`;
    this.#pending.set(key, (this.#pending.get(key) ?? 0) + 1);
  }

  /** Writes what was counted; on failure the counts are kept for the next flush. */
  async flush(): Promise<void> {
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    const counts = [...batch].map(([key, calls]) => {
      const [day, tenantId] = key.split(' ') as [string, string];
      return { day, tenantId, calls };
    });
    try {
      await this.#repository.addApiCalls(counts);
    } catch (error) {
      for (const [key, calls] of batch) this.#pending.set(key, (this.#pending.get(key) ?? 0) + calls);
      throw error;
    }
  }
}
