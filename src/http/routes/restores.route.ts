import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { BackupService } from '../../modules/backups/backup.service.ts';
import type { RestoreResult } from '../../modules/backups/restore.service.ts';
import type { TenantService } from '../../modules/tenants/tenant.service.ts';
import { requireUser } from '../plugins/session-auth.ts';
import { requireStaff } from '../plugins/staff-auth.ts';
import { errorResponses } from '../presenters.ts';

const restoreResultSchema = z.object({
  tenant: z.object({ id: z.string(), slug: z.string().nullable() }).describe('The new tenant'),
  sourceTenantId: z.string(),
  at: z.iso.datetime(),
  location: z.string().describe('The backup location it was restored from'),
  snapshotTakenAt: z.iso.datetime(),
  rowsLoaded: z.number().int(),
  entriesReplayed: z.number().int(),
  objectsRestored: z.number().int().describe('Attachment files brought back into the new tenant'),
  objectsFromLiveStore: z
    .number()
    .int()
    .describe(
      'Of those, files read from the attachment store because the location had no copy (backups taken before files were copied)',
    ),
});

const restoreBody = z.strictObject({
  at: z.iso.datetime().describe('The instant to restore to (ISO 8601), inside the restore window'),
  intoSlug: z.string().max(200).describe('Slug of the new tenant the restored data is published as'),
  intoName: z.string().max(1000).optional(),
});

const errors = errorResponses(400, 401, 403, 404, 409, 502);

function presentRestore(result: RestoreResult) {
  return {
    tenant: { id: result.tenant.id, slug: result.tenant.slug },
    sourceTenantId: result.sourceTenantId,
    at: result.at.toISOString(),
    location: result.location,
    snapshotTakenAt: result.snapshotTakenAt.toISOString(),
    rowsLoaded: result.rowsLoaded,
    entriesReplayed: result.entriesReplayed,
    objectsRestored: result.objectsRestored,
    objectsFromLiveStore: result.objectsFromLiveStore,
  };
}

const description =
  'Restores the tenant as it was at `at` (the newest snapshot before it plus the change journal) into a new tenant; the tenant itself and every other tenant are not touched. Runs within the request: for very large tenants use `strongroom restore`.';

/** `POST /api/v1/restores`: owners and admins restore their own tenant into a new one (session only). */
export function restoreRoutes(deps: { backups: BackupService }): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/restores',
      {
        schema: {
          summary:
            'Restore this tenant as it was at an instant into a new tenant (owner, admin; session only)',
          description,
          tags: ['backups'],
          security: [{ session: [] }],
          body: restoreBody,
          response: { 201: restoreResultSchema, ...errors },
        },
      },
      async (request, reply) => {
        const { principal } = requireUser(request);
        const { at, ...rest } = request.body;
        const result = await deps.backups.restoreOwn(principal, { ...rest, at: new Date(at) });
        return reply.status(201).send(presentRestore(result));
      },
    );
  };
}

/** Operators: restore any tenant into a new one, and see the backups' health. */
export function opsRestoreRoutes(deps: {
  backups: BackupService;
  tenants: TenantService;
}): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/tenants/:tenantId/restores',
      {
        schema: {
          summary: 'Restore a tenant as it was at an instant into a new tenant (operator)',
          description,
          tags: ['operator'],
          params: z.object({
            tenantId: z.string().min(1).max(64).describe('The tenant id (UUID) or its slug'),
          }),
          body: restoreBody.extend({
            from: z.string().max(100).optional().describe('Restore from this location only'),
          }),
          response: { 201: restoreResultSchema, ...errors },
        },
      },
      async (request, reply) => {
        requireStaff(request, 'tenants.restore');
        const tenant = await deps.tenants.get(request.params.tenantId);
        const { at, ...rest } = request.body;
        const result = await deps.backups.restore({ ...rest, tenant: tenant.id, at: new Date(at) });
        return reply.status(201).send(presentRestore(result));
      },
    );
    const tenantParams = z.object({
      tenantId: z.string().min(1).max(64).describe('The tenant id (UUID) or its slug'),
    });
    app.post(
      '/tenants/:tenantId/restores/in-place',
      {
        schema: {
          summary: 'Restore a tenant in place as it was at an instant; its previous data is kept (operator)',
          description:
            'Restores into a fresh schema and verifies it, then pauses the tenant for a moment (its requests answer 503 `tenant_restoring` with Retry-After) and swaps the restored data in. The previous data is kept until `…/in-place/confirm` drops it or `…/in-place/undo` swaps it back; until then another in-place restore is refused (`restore_unconfirmed`). Other tenants are not touched.',
          tags: ['operator'],
          params: tenantParams,
          body: z.strictObject({
            at: restoreBody.shape.at,
            from: z.string().max(100).optional().describe('Restore from this location only'),
          }),
          response: { 200: restoreResultSchema, ...errors },
        },
      },
      async (request) => {
        requireStaff(request, 'tenants.restore');
        const tenant = await deps.tenants.get(request.params.tenantId);
        const { at, ...rest } = request.body;
        return presentRestore(
          await deps.backups.restoreInPlace({ ...rest, tenant: tenant.id, at: new Date(at) }),
        );
      },
    );
    for (const action of ['confirm', 'undo'] as const) {
      app.post(
        `/tenants/:tenantId/restores/in-place/${action}`,
        {
          schema: {
            summary:
              action === 'confirm'
                ? 'Make an in-place restore final: drop the previous data it kept (operator)'
                : 'Undo an in-place restore: swap the kept data back in, discarding changes since (operator)',
            tags: ['operator'],
            params: tenantParams,
            response: {
              200: z.object({ tenant: z.object({ id: z.string(), slug: z.string().nullable() }) }),
              ...errors,
            },
          },
        },
        async (request) => {
          requireStaff(request, 'tenants.restore');
          const { id } = await deps.tenants.get(request.params.tenantId);
          const tenant =
            action === 'confirm'
              ? await deps.backups.confirmInPlaceRestore(id)
              : (await deps.backups.undoInPlaceRestore(id)).tenant;
          return { tenant: { id: tenant.id, slug: tenant.slug } };
        },
      );
    }
    app.get(
      '/backups/status',
      {
        schema: {
          summary: 'Per tenant and backup location: newest snapshot, last segment, pending changes, RPO',
          tags: ['operator'],
          response: { 200: z.object({ items: z.array(z.unknown()) }), ...errors },
        },
      },
      async (request) => {
        requireStaff(request, 'backups.read');
        return { items: await deps.backups.status() };
      },
    );
  };
}
