import { LRUCache } from 'lru-cache';
import type { WithTenant } from '../../db/with-tenant.ts';
import type { Clock } from '../../platform/clock.ts';
import { type AccessPrincipal, authorize } from '../access/policy.ts';
import { quotaErrors } from './quota.errors.ts';
import { type LimitOverrides, noOverrides, type TenantLimitsRepository } from './tenant-limits.repository.ts';
import { type StoredUsage, usageRepository } from './usage.repository.ts';

/** What one tenant may use. */
export interface TenantLimits {
  /** Requests per second across all nodes (a fixed one-second window). */
  requestsPerSecond: number;
  /** Requests in progress at once, on each node. */
  concurrentRequests: number;
  maxRecords: number;
  /** Record data plus attachment versions held (including retired ones inside the restore window). */
  maxStorageBytes: number;
}

export interface TenantUsage extends StoredUsage {
  storageBytes: number;
  /** API calls per UTC day, the last 30 days (today last), as counted so far. */
  apiCalls: Array<{ day: string; calls: number }>;
  limits: TenantLimits & { overridden: Array<keyof TenantLimits> };
}

/**
 * Limits are read on every request, so each node keeps what it read for this long: an operator's
 * change reaches every node within it.
 */
export const limitsTtlMs = 5_000;

const limitFields = ['requestsPerSecond', 'concurrentRequests', 'maxRecords', 'maxStorageBytes'] as const;
const limitBounds: Record<keyof TenantLimits, [number, number]> = {
  requestsPerSecond: [1, 1_000_000],
  concurrentRequests: [1, 100_000],
  maxRecords: [0, Number.MAX_SAFE_INTEGER],
  maxStorageBytes: [0, Number.MAX_SAFE_INTEGER],
};

/**
 * Per-tenant limits (platform defaults, overridden per tenant by operators) and the quota checks
 * writes make. Quotas are checked inside the write's own transaction against the usage counters,
 * which triggers keep in those same transactions; concurrent writers may each pass the check, so a
 * tenant can end over its quota by at most the writes in flight at that moment.
 */
export class QuotaService {
  readonly #defaults: TenantLimits;
  readonly #repository: TenantLimitsRepository;
  readonly #withTenant: WithTenant;
  readonly #clock: Clock;
  readonly #local = new LRUCache<string, TenantLimits>({ max: 10_000, ttl: limitsTtlMs });

  constructor(deps: {
    defaults: TenantLimits;
    repository: TenantLimitsRepository;
    withTenant: WithTenant;
    clock: Clock;
  }) {
    this.#defaults = deps.defaults;
    this.#repository = deps.repository;
    this.#withTenant = deps.withTenant;
    this.#clock = deps.clock;
  }

  /** The tenant's effective limits, at most `limitsTtlMs` old. */
  async limitsOf(tenantId: string): Promise<TenantLimits> {
    const cached = this.#local.get(tenantId);
    if (cached) return cached;
    const limits = effective(this.#defaults, await this.#repository.find(tenantId));
    this.#local.set(tenantId, limits);
    return limits;
  }

  /** Operators set a tenant's limits; a null field returns to the platform default. */
  async setLimits(tenantId: string, input: Record<string, unknown>, staffId?: string): Promise<TenantLimits> {
    const overrides: LimitOverrides = { ...noOverrides };
    for (const [field, value] of Object.entries(input)) {
      if (!(limitFields as readonly string[]).includes(field)) throw quotaErrors.invalidLimits(field);
      const name = field as keyof TenantLimits;
      const [min, max] = limitBounds[name];
      if (
        value !== null &&
        (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max)
      ) {
        throw quotaErrors.invalidLimits(field);
      }
      overrides[name] = value as number | null;
    }
    await this.#repository.save(tenantId, overrides, staffId);
    this.#local.delete(tenantId);
    return effective(this.#defaults, overrides);
  }

  /** `usageOf` the caller's own tenant, for its owners and admins (`usage.read`). */
  async usageFor(principal: Extract<AccessPrincipal, { kind: 'user' }>): Promise<TenantUsage> {
    authorize(principal, 'usage.read', { tenantId: principal.tenantId, isProject: false });
    return this.usageOf(principal.tenantId);
  }

  /** What the tenant stores and has called, with its limits. */
  async usageOf(tenantId: string): Promise<TenantUsage> {
    const stored = await this.#withTenant(tenantId, (scope) => usageRepository.read(scope.db), {
      readOnly: true,
    });
    const from = new Date(this.#clock.now().getTime() - 29 * 86_400_000).toISOString().slice(0, 10);
    const [apiCalls, overrides] = await Promise.all([
      this.#repository.apiCalls(tenantId, from),
      this.#repository.find(tenantId),
    ]);
    const limits = effective(this.#defaults, overrides);
    return {
      ...stored,
      storageBytes: stored.recordBytes + stored.attachmentBytes,
      apiCalls,
      limits: { ...limits, overridden: limitFields.filter((field) => overrides?.[field] != null) },
    };
  }
}

function effective(defaults: TenantLimits, overrides: LimitOverrides | undefined): TenantLimits {
  return {
    requestsPerSecond: overrides?.requestsPerSecond ?? defaults.requestsPerSecond,
    concurrentRequests: overrides?.concurrentRequests ?? defaults.concurrentRequests,
    maxRecords: overrides?.maxRecords ?? defaults.maxRecords,
    maxStorageBytes: overrides?.maxStorageBytes ?? defaults.maxStorageBytes,
  };
}

/**
 * Throws `quota_exceeded` unless the tenant has room for `add` more records and bytes. Pure, so it can
 * run inside a tenant transaction with limits read before it (`limitsOf` may ask the control plane).
 */
export function assertRoom(
  limits: TenantLimits,
  usage: StoredUsage,
  add: { records?: number; bytes?: number },
): void {
  if (add.records && usage.records + add.records > limits.maxRecords) {
    throw quotaErrors.quotaExceeded('records', limits.maxRecords);
  }
  const bytes = add.bytes ?? 0;
  if (bytes > 0 && usage.recordBytes + usage.attachmentBytes + bytes > limits.maxStorageBytes) {
    throw quotaErrors.quotaExceeded('storage_bytes', limits.maxStorageBytes);
  }
}
