import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TenantService } from '../../modules/tenants/tenant.service.ts';
import { requireStaff } from '../plugins/staff-auth.ts';
import { errorResponses, presentTenant, tenantSchema } from '../presenters.ts';

const tenantParams = z.object({
  tenantId: z.string().min(1).max(64).describe('The tenant id (UUID) or its slug'),
});

const errors = errorResponses(400, 401, 403, 404, 409);

/**
 * Tenant lifecycle for operators: the same operations as `strongroom tenant …`. Thin routes:
 * validate → authorize (staff role) → service → present.
 */
export function opsTenantRoutes(deps: { tenants: TenantService }): FastifyPluginAsyncZod {
  const { tenants } = deps;
  return async (app) => {
    app.post(
      '/tenants',
      {
        schema: {
          summary: 'Create a tenant',
          description:
            'Creates the tenant with its own schema, database role and data key, all or nothing. The owner setup token is shown once.',
          tags: ['operator'],
          body: z.object({
            slug: z.string().max(200),
            name: z.string().max(1000),
            ownerEmail: z.string().max(1000),
          }),
          response: {
            201: z.object({
              tenant: tenantSchema,
              ownerSetupToken: z.string(),
              ownerSetupExpiresAt: z.iso.datetime(),
            }),
            ...errors,
          },
        },
      },
      async (request, reply) => {
        requireStaff(request, 'tenants.create');
        const created = await tenants.create(request.body);
        return reply.status(201).send({
          tenant: presentTenant(created.tenant),
          ownerSetupToken: created.ownerSetupToken,
          ownerSetupExpiresAt: created.ownerSetupExpiresAt.toISOString(),
        });
      },
    );

    app.get(
      '/tenants',
      {
        schema: {
          summary: 'List tenants',
          tags: ['operator'],
          querystring: z.object({
            limit: z.coerce.number().int().min(1).max(1000).default(100),
            after: z.uuid().optional().describe('Cursor: the last id of the previous page'),
            includeDeleted: z.enum(['true', 'false']).default('false'),
          }),
          response: {
            200: z.object({ items: z.array(tenantSchema), nextCursor: z.string().nullable() }),
            ...errors,
          },
        },
      },
      async (request) => {
        requireStaff(request, 'tenants.read');
        const { limit, after, includeDeleted } = request.query;
        const items = await tenants.list({
          limit,
          includeDeleted: includeDeleted === 'true',
          ...(after ? { afterId: after } : {}),
        });
        return {
          items: items.map(presentTenant),
          nextCursor: items.length === limit ? (items.at(-1)?.id ?? null) : null,
        };
      },
    );

    app.get(
      '/tenants/:tenantId',
      {
        schema: {
          summary: 'Get a tenant',
          tags: ['operator'],
          params: tenantParams,
          response: { 200: tenantSchema, ...errors },
        },
      },
      async (request) => {
        requireStaff(request, 'tenants.read');
        return presentTenant(await tenants.get(request.params.tenantId));
      },
    );

    app.get(
      '/tenants/:tenantId/schema',
      {
        schema: {
          summary: "Read a tenant's schema version",
          description: "Read from the tenant's own schema, through its own database role.",
          tags: ['operator'],
          params: tenantParams,
          response: {
            200: z.object({
              tenantId: z.uuid(),
              applied: z.array(z.string()),
              latest: z.string().nullable(),
              upToDate: z.boolean(),
            }),
            ...errors,
          },
        },
      },
      async (request) => {
        requireStaff(request, 'tenants.read');
        return tenants.getSchemaStatus(request.params.tenantId);
      },
    );

    for (const action of ['suspend', 'resume'] as const) {
      app.post(
        `/tenants/:tenantId/${action}`,
        {
          schema: {
            summary: action === 'suspend' ? 'Suspend a tenant' : 'Resume a suspended tenant',
            tags: ['operator'],
            params: tenantParams,
            response: { 200: tenantSchema, ...errors },
          },
        },
        async (request) => {
          requireStaff(request, 'tenants.suspend');
          const tenant =
            action === 'suspend'
              ? await tenants.suspend(request.params.tenantId)
              : await tenants.resume(request.params.tenantId);
          return presentTenant(tenant);
        },
      );
    }

    app.delete(
      '/tenants/:tenantId',
      {
        schema: {
          summary: 'Delete a tenant',
          description:
            "Drops the tenant's schema and role and destroys its data key: every copy of its data becomes unreadable. Requires ?confirm=<slug>.",
          tags: ['operator'],
          params: tenantParams,
          querystring: z.object({ confirm: z.string().max(200).optional() }),
          response: { 200: tenantSchema, ...errors },
        },
      },
      async (request) => {
        requireStaff(request, 'tenants.delete');
        return presentTenant(await tenants.delete(request.params.tenantId, request.query.confirm));
      },
    );
  };
}
