import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AccessRequest, SupportAccessService } from '../../modules/support/support-access.service.ts';
import { requireUser } from '../plugins/session-auth.ts';
import { requireStaff } from '../plugins/staff-auth.ts';
import { errorResponses } from '../presenters.ts';

const accessRequestSchema = z.object({
  id: z.string(),
  kind: z.enum(['consent', 'break_glass']),
  tenantId: z.string(),
  staff: z.object({ id: z.string(), email: z.string(), name: z.string(), role: z.string() }),
  reason: z.string(),
  ticket: z.string().nullable(),
  scope: z.union([
    z.object({ kind: z.literal('settings') }),
    z.object({ kind: z.literal('projects'), projectIds: z.array(z.string()) }),
  ]),
  access: z.enum(['read', 'write']),
  durationMinutes: z.number(),
  status: z.enum(['pending', 'approved', 'denied', 'revoked', 'expired']),
  requestedAt: z.iso.datetime(),
  pendingUntil: z.iso.datetime(),
  decidedAt: z.iso.datetime().nullable(),
  decidedBy: z.string().nullable().describe('The owner or admin who approved or denied'),
  startsAt: z.iso.datetime().nullable(),
  endsAt: z.iso.datetime().nullable(),
  revokedAt: z.iso.datetime().nullable(),
  revokedBy: z.string().nullable(),
  confirmedBy: z.string().nullable().describe('Break-glass: the second staff member who confirmed it'),
});

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

function presentAccessRequest(request: AccessRequest) {
  return {
    ...request,
    requestedAt: request.requestedAt.toISOString(),
    pendingUntil: request.pendingUntil.toISOString(),
    decidedAt: iso(request.decidedAt),
    startsAt: iso(request.startsAt),
    endsAt: iso(request.endsAt),
    revokedAt: iso(request.revokedAt),
  };
}

const errors = errorResponses(400, 401, 403, 404, 409);

const idParams = z.object({ id: z.string().max(64) });

const requestBody = z.object({
  tenant: z.string().min(1).max(64).describe('The tenant id or slug'),
  reason: z.string().max(4000),
  ticket: z.string().max(400).optional(),
  scope: z.unknown().describe('{"kind":"settings"} or {"kind":"projects","projectIds":[…]}'),
  access: z.enum(['read', 'write']).optional(),
  durationMinutes: z.number().optional(),
});

/** The tenant's side of the lockbox: see every request, approve or deny it, revoke a grant. */
export function accessRequestRoutes(deps: { support: SupportAccessService }): FastifyPluginAsyncZod {
  const { support } = deps;
  return async (app) => {
    app.get(
      '/access-requests',
      {
        schema: {
          summary: 'Support access requests and grants for this tenant (owner, admin)',
          tags: ['support access'],
          security: [{ session: [] }],
          response: { 200: z.object({ items: z.array(accessRequestSchema) }), ...errors },
        },
      },
      async (request) => ({
        items: (await support.listForTenant(requireUser(request).principal)).map(presentAccessRequest),
      }),
    );
    app.get(
      '/access-requests/:id',
      {
        schema: {
          summary: 'One support access request (owner, admin)',
          tags: ['support access'],
          security: [{ session: [] }],
          params: idParams,
          response: { 200: accessRequestSchema, ...errors },
        },
      },
      async (request) =>
        presentAccessRequest(await support.get(requireUser(request).principal, request.params.id)),
    );
    for (const [verb, summary] of [
      [
        'approve',
        'Approve a pending request: it becomes a grant for its duration, from now (owner, admin; session only)',
      ],
      ['deny', 'Deny a pending request (owner, admin; session only)'],
      ['revoke', 'End an approved grant now (owner, admin; session only)'],
    ] as const) {
      app.post(
        `/access-requests/:id/${verb}`,
        {
          schema: {
            summary,
            tags: ['support access'],
            security: [{ session: [] }],
            params: idParams,
            response: { 200: accessRequestSchema, ...errors },
          },
        },
        async (request) => {
          const { principal } = requireUser(request);
          return presentAccessRequest(await support[verb](principal, request.params.id));
        },
      );
    }
  };
}

/** The staff side: ask a tenant for access, and follow one's own requests. */
export function opsAccessRequestRoutes(deps: { support: SupportAccessService }): FastifyPluginAsyncZod {
  const { support } = deps;
  return async (app) => {
    app.post(
      '/access-requests',
      {
        schema: {
          summary: "Ask a tenant's owners and admins for access to its data (support, operator)",
          description:
            'Nothing opens until an owner or admin of the tenant approves. Scope: the tenant settings, or named projects; read unless write is asked for; duration in minutes (default 8 h).',
          tags: ['operator'],
          body: requestBody,
          response: { 201: accessRequestSchema, ...errors },
        },
      },
      async (request, reply) => {
        const staff = requireStaff(request, 'support.request');
        return reply.status(201).send(presentAccessRequest(await support.request(staff, request.body)));
      },
    );
    app.post(
      '/break-glass',
      {
        schema: {
          summary: 'Ask for emergency access without the tenant (off unless STRONGROOM_BREAK_GLASS=on)',
          description:
            "Opens only when a second staff member confirms it, for at most an hour; the tenant's owners and admins are e-mailed at once and can deny or revoke it.",
          tags: ['operator'],
          body: requestBody,
          response: { 201: accessRequestSchema, ...errors },
        },
      },
      async (request, reply) => {
        const staff = requireStaff(request, 'support.break_glass');
        return reply.status(201).send(presentAccessRequest(await support.breakGlass(staff, request.body)));
      },
    );
    app.post(
      '/break-glass/:id/confirm',
      {
        schema: {
          summary: 'Confirm emergency access as the second person (operator, security; never the requester)',
          tags: ['operator'],
          params: idParams,
          response: { 200: accessRequestSchema, ...errors },
        },
      },
      async (request) => {
        const staff = requireStaff(request, 'support.break_glass_confirm');
        return presentAccessRequest(await support.confirmBreakGlass(staff, request.params.id));
      },
    );
    app.get(
      '/access-requests',
      {
        schema: {
          summary: "The caller's own access requests, newest first (support, operator)",
          tags: ['operator'],
          response: { 200: z.object({ items: z.array(accessRequestSchema) }), ...errors },
        },
      },
      async (request) => ({
        items: (await support.listMine(requireStaff(request, 'support.request'))).map(presentAccessRequest),
      }),
    );
  };
}
