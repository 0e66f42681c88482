import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** Tenants that get their own label; the rest share `_other`, so label cardinality stays bounded. */
export const maxTenantLabels = 50;

/**
 * The app's Prometheus metrics, in a registry of its own (each app built in a test gets a fresh one).
 * Labels are bounded: routes are the route templates (`/api/v1/projects/:projectId/records`), never
 * raw URLs; statuses are codes; tenants are ids, at most `maxTenantLabels` of them per process (the
 * first seen), the rest counted under `_other`.
 */
export class HttpMetrics {
  readonly registry = new Registry();
  readonly #requests = new Counter({
    name: 'strongroom_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly #duration = new Histogram({
    name: 'strongroom_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method and route template.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly #tenantCalls = new Counter({
    name: 'strongroom_tenant_api_calls_total',
    help: `Authenticated API calls admitted per tenant (the first ${maxTenantLabels} tenants seen by this process; the rest under tenant="_other").`,
    labelNames: ['tenant'] as const,
    registers: [this.registry],
  });
  readonly #rateLimited = new Counter({
    name: 'strongroom_rate_limited_total',
    help: 'Requests refused with 429 rate_limited, by reason (rate or concurrency).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly #tenantLabels = new Set<string>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'strongroom_' });
  }

  answered(method: string, route: string | undefined, status: number, seconds: number): void {
    const template = route ?? 'unmatched';
    this.#requests.inc({ method, route: template, status: String(status) });
    this.#duration.observe({ method, route: template }, seconds);
  }

  tenantCall(tenantId: string): void {
    this.#tenantCalls.inc({ tenant: this.#tenantLabel(tenantId) });
  }

  rateLimited(reason: string): void {
    this.#rateLimited.inc({ reason });
  }

  #tenantLabel(tenantId: string): string {
    if (this.#tenantLabels.has(tenantId)) return tenantId;
    if (this.#tenantLabels.size >= maxTenantLabels) return '_other';
    this.#tenantLabels.add(tenantId);
    return tenantId;
  }
}
