import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { authorize } from '../../modules/access/policy.ts';
import type { BackupService } from '../../modules/backups/backup.service.ts';
import {
  presentRestoreResult,
  type RestoreJob,
  type RestoreJobs,
} from '../../modules/backups/restore-jobs.ts';
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
  objectsUnchanged: z
    .number()
    .int()
    .describe(
      'Of those, files an in-place restore found intact in the attachment store (same size and SHA-256 as the backup) and left as they were; 0 into a new tenant',
    ),
});

const restoreJobSchema = z.object({
  id: z.string(),
  tenantId: z.string().describe('The tenant restored from'),
  origin: z
    .enum(['tenant', 'operator'])
    .describe("Requested by the tenant's owner or admin, or by an operator"),
  at: z.iso.datetime().describe('The instant restored to'),
  intoSlug: z.string(),
  status: z.enum(['queued', 'running', 'succeeded', 'failed']),
  phase: z
    .enum(['queued', 'starting', 'snapshot', 'journal', 'files', 'new_snapshot', 'done'])
    .describe(
      "snapshot: loading the snapshot; journal: replaying the change journal; files: copying attachment files; new_snapshot: the new tenant's first snapshot",
    ),
  progress: z
    .object({ done: z.number().int(), total: z.number().int() })
    .describe('Snapshot rows loaded plus journal entries read, of the total the manifests announce'),
  etaAt: z.iso
    .datetime()
    .nullable()
    .describe('Estimated end of the snapshot and journal phases, from the rate so far (null otherwise)'),
  createdAt: z.iso.datetime(),
  startedAt: z.iso.datetime().nullable(),
  progressAt: z.iso.datetime().nullable().describe('When progress was last recorded (about every second)'),
  finishedAt: z.iso.datetime().nullable(),
  result: restoreResultSchema.nullable().describe('Once succeeded: the new tenant and what was restored'),
  error: z
    .object({ code: z.string(), message: z.string() })
    .nullable()
    .describe('Once failed: a stable error code (docs/errors.md), e.g. `restore_interrupted`'),
});

const restoreBody = z.strictObject({
  at: z.iso.datetime().describe('The instant to restore to (ISO 8601), inside the restore window'),
  intoSlug: z.string().max(200).describe('Slug of the new tenant the restored data is published as'),
  intoName: z.string().max(1000).optional(),
});

const jobParams = z.object({ jobId: z.string().max(64).describe('The restore job id') });
const listQuery = z.object({ limit: z.coerce.number().int().min(1).max(200).default(50) });

const errors = errorResponses(400, 401, 403, 404, 409, 502);

const iso = (date: Date | null) => date?.toISOString() ?? null;

function presentJob(job: RestoreJob) {
  return {
    id: job.id,
    tenantId: job.tenantId,
    origin: job.origin,
    at: job.at.toISOString(),
    intoSlug: job.intoSlug,
    status: job.status,
    phase: job.phase,
    progress: job.progress,
    etaAt: iso(job.etaAt),
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    progressAt: iso(job.progressAt),
    finishedAt: iso(job.finishedAt),
    result: job.result,
    error: job.error,
  };
}

const description =
  'Checks the request at once (a bad or taken slug, an unknown location, a time outside the window: 4xx), then answers 202 with a restore job that runs in the background: it restores the tenant as it was at `at` (the newest snapshot before it plus the change journal) into a new tenant; the tenant itself and every other tenant are not touched. Follow it with GET on the job (`Location`). A job whose server stopped mid-way fails with `restore_interrupted` (nothing of it is kept): request it again.';

/** Names the job in the request's audit entry (the collection URL names none). */
function auditJob(request: FastifyRequest, job: RestoreJob): void {
  if (request.audit) {
    request.audit.resourceType = 'restores';
    request.audit.resourceId = job.id;
  }
}

/**
 * An operator route names its tenant by id or slug; the platform chain records the tenant's id (a
 * slug there would not be one, and the entry could not be written).
 */
function auditTenant(request: FastifyRequest, tenantId: string): void {
  if (request.audit) request.audit.tenantId = tenantId;
}

/** `POST /api/v1/restores` and its jobs: owners and admins restore their own tenant into a new one (session only). */
export function restoreRoutes(deps: { jobs: RestoreJobs }): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/restores',
      {
        schema: {
          summary:
            'Restore this tenant as it was at an instant into a new tenant, in the background (owner, admin; session only)',
          description,
          tags: ['backups'],
          security: [{ session: [] }],
          body: restoreBody,
          response: { 202: restoreJobSchema, ...errors },
        },
      },
      async (request, reply) => {
        const { principal } = requireUser(request);
        const { at, ...rest } = request.body;
        const job = await deps.jobs.requestOwn(principal, { ...rest, at: new Date(at) }, request.id);
        auditJob(request, job);
        return reply.status(202).header('location', `/api/v1/restores/${job.id}`).send(presentJob(job));
      },
    );
    app.get(
      '/restores',
      {
        schema: {
          summary: "This tenant's restore jobs, newest first (owner, admin; session only)",
          tags: ['backups'],
          security: [{ session: [] }],
          querystring: listQuery,
          response: { 200: z.object({ items: z.array(restoreJobSchema) }), ...errors },
        },
      },
      async (request) => {
        const { principal } = requireUser(request);
        authorize(principal, 'tenant.restore', { tenantId: principal.tenantId, isProject: false });
        const jobs = await deps.jobs.list({ tenantId: principal.tenantId }, request.query.limit);
        return { items: jobs.map(presentJob) };
      },
    );
    app.get(
      '/restores/:jobId',
      {
        schema: {
          summary:
            'A restore job of this tenant: status, phase, progress, ETA, result (owner, admin; session only)',
          description:
            'Only jobs this tenant requested: any other id answers 404 `restore_job_not_found`, whether or not it exists.',
          tags: ['backups'],
          security: [{ session: [] }],
          params: jobParams,
          response: { 200: restoreJobSchema, ...errors },
        },
      },
      async (request) => {
        const { principal } = requireUser(request);
        authorize(principal, 'tenant.restore', { tenantId: principal.tenantId, isProject: false });
        return presentJob(await deps.jobs.get(request.params.jobId, { tenantId: principal.tenantId }));
      },
    );
  };
}

/** Operators: restore any tenant into a new one, and see the backups' health. */
export function opsRestoreRoutes(deps: {
  backups: BackupService;
  tenants: TenantService;
  jobs: RestoreJobs;
}): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/tenants/:tenantId/restores',
      {
        schema: {
          summary: 'Restore a tenant as it was at an instant into a new tenant, in the background (operator)',
          description,
          tags: ['operator'],
          params: z.object({
            tenantId: z.string().min(1).max(64).describe('The tenant id (UUID) or its slug'),
          }),
          body: restoreBody.extend({
            from: z.string().max(100).optional().describe('Restore from this location only'),
          }),
          response: { 202: restoreJobSchema, ...errors },
        },
      },
      async (request, reply) => {
        const staff = requireStaff(request, 'tenants.restore');
        const tenant = await deps.tenants.get(request.params.tenantId);
        auditTenant(request, tenant.id);
        const { at, ...rest } = request.body;
        const job = await deps.jobs.request(
          tenant.id,
          { ...rest, at: new Date(at) },
          { origin: 'operator', kind: 'staff', id: staff.staffId, requestId: request.id },
        );
        auditJob(request, job);
        return reply.status(202).header('location', `/api/v1/ops/restores/${job.id}`).send(presentJob(job));
      },
    );
    app.get(
      '/restores',
      {
        schema: {
          summary: "Every restore job (operators' and tenants'), newest first (operator, security)",
          tags: ['operator'],
          querystring: listQuery.extend({
            tenantId: z.string().min(1).max(64).optional().describe('Only this tenant (id or slug)'),
          }),
          response: { 200: z.object({ items: z.array(restoreJobSchema) }), ...errors },
        },
      },
      async (request) => {
        requireStaff(request, 'backups.read');
        const { limit, tenantId } = request.query;
        const scope =
          tenantId === undefined
            ? { all: true as const }
            : { all: true as const, tenantId: (await deps.tenants.get(tenantId)).id };
        return { items: (await deps.jobs.list(scope, limit)).map(presentJob) };
      },
    );
    app.get(
      '/restores/:jobId',
      {
        schema: {
          summary: 'A restore job: status, phase, progress, ETA, result (operator, security)',
          tags: ['operator'],
          params: jobParams,
          response: { 200: restoreJobSchema, ...errors },
        },
      },
      async (request) => {
        requireStaff(request, 'backups.read');
        return presentJob(await deps.jobs.get(request.params.jobId, 'all'));
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
        auditTenant(request, tenant.id);
        const { at, ...rest } = request.body;
        return presentRestoreResult(
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
          auditTenant(request, id);
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
