import { z } from 'zod';
import type { Tenant } from '../modules/tenants/tenant.repository.ts';

/** What a tenant looks like on the wire; the same schema documents it in OpenAPI. */
export const tenantSchema = z.object({
  id: z.uuid(),
  slug: z.string(),
  name: z.string().nullable(),
  status: z.enum(['active', 'suspended', 'deleted']),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  deletedAt: z.iso.datetime().nullable(),
  schemaVersion: z.string().nullable(),
  migrationStatus: z.enum(['ok', 'failed']),
});

export function presentTenant(tenant: Tenant): z.infer<typeof tenantSchema> {
  return {
    id: tenant.id,
    slug: tenant.slug,
    name: tenant.name,
    status: tenant.status,
    createdAt: tenant.createdAt.toISOString(),
    updatedAt: tenant.updatedAt.toISOString(),
    deletedAt: tenant.deletedAt?.toISOString() ?? null,
    schemaVersion: tenant.schemaVersion,
    migrationStatus: tenant.migrationStatus,
  };
}

export const errorResponseSchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    requestId: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});

/** The error responses a route documents: the same error body for each status given. */
export function errorResponses<const S extends number>(
  ...statuses: S[]
): Record<S, typeof errorResponseSchema> {
  return Object.fromEntries(statuses.map((status) => [status, errorResponseSchema])) as Record<
    S,
    typeof errorResponseSchema
  >;
}
