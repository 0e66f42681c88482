import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { QuotaService } from '../../modules/quotas/quota.service.ts';
import type { TenantService } from '../../modules/tenants/tenant.service.ts';
import { requireUser } from '../plugins/session-auth.ts';
import { requireStaff } from '../plugins/staff-auth.ts';
import { errorResponses } from '../presenters.ts';

const limitsSchema = z.object({
  requestsPerSecond: z.number().int().describe('Requests per second, across all nodes'),
  concurrentRequests: z.number().int().describe('Requests in progress at once, per node'),
  maxRecords: z.number().int(),
  maxStorageBytes: z.number().int().describe('Record data plus attachment versions held'),
});

const usageSchema = z.object({
  records: z.number().int(),
  recordBytes: z.number().int().describe('Bytes the record data takes in the database'),
  attachmentBytes: z
    .number()
    .int()
    .describe('Bytes of attachment versions held, retired ones included until purged'),
  storageBytes: z.number().int().describe('recordBytes + attachmentBytes: what the storage quota counts'),
  apiCalls: z
    .array(z.object({ day: z.string(), calls: z.number().int() }))
    .describe('API calls per UTC day, the last 30 days; counts reach it within a few seconds'),
  limits: limitsSchema.extend({
    overridden: z
      .array(z.string())
      .describe('Limits an operator set for this tenant; the rest are platform defaults'),
  }),
});

const errors = errorResponses(400, 401, 403, 404);

/** `GET /api/v1/usage`: the caller's own tenant, for its owners and admins. */
export function usageRoutes(deps: { quotas: QuotaService }): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/usage',
      {
        schema: {
          summary: "The tenant's usage and limits (owner, admin)",
          tags: ['usage'],
          security: [{ session: [] }],
          response: { 200: usageSchema, ...errors },
        },
      },
      async (request) => deps.quotas.usageFor(requireUser(request).principal),
    );
  };
}

const tenantParams = z.object({
  tenantId: z.string().min(1).max(64).describe('The tenant id (UUID) or its slug'),
});

const limitValue = z.number().int().nullable().optional();

/** Operators: a tenant's usage, and its limits (`PUT` replaces them; null or absent = platform default). */
export function opsUsageRoutes(deps: {
  quotas: QuotaService;
  tenants: TenantService;
}): FastifyPluginAsyncZod {
  const { quotas, tenants } = deps;
  return async (app) => {
    app.get(
      '/tenants/:tenantId/usage',
      {
        schema: {
          summary: "A tenant's usage and limits",
          tags: ['operator'],
          params: tenantParams,
          response: { 200: usageSchema, ...errors },
        },
      },
      async (request) => {
        requireStaff(request, 'tenants.read');
        const tenant = await tenants.get(request.params.tenantId);
        return quotas.usageOf(tenant.id);
      },
    );

    app.put(
      '/tenants/:tenantId/limits',
      {
        schema: {
          summary: "Set a tenant's limits (operator)",
          description:
            "Replaces the tenant's limits: a field that is null or absent returns to the platform default (STRONGROOM_TENANT_*). Every node applies the change within 5 s.",
          tags: ['operator'],
          params: tenantParams,
          body: z.strictObject({
            requestsPerSecond: limitValue,
            concurrentRequests: limitValue,
            maxRecords: limitValue,
            maxStorageBytes: limitValue,
          }),
          response: { 200: limitsSchema, ...errors },
        },
      },
      async (request) => {
        const staff = requireStaff(request, 'tenants.limits');
        const tenant = await tenants.get(request.params.tenantId);
        return quotas.setLimits(tenant.id, request.body, staff.staffId);
      },
    );
  };
}
