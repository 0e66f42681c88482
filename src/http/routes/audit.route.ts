import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { auditErrors } from '../../modules/audit/audit.errors.ts';
import type { AuditFilters } from '../../modules/audit/audit.repository.ts';
import { type AuditService, maxAuditPageSize } from '../../modules/audit/audit.service.ts';
import type { ChainedAuditEntry } from '../../modules/audit/audit-chain.ts';
import { csvHeader, exportChunk, exportProof } from '../../modules/audit/audit-export.ts';
import { requireUser } from '../plugins/session-auth.ts';
import { errorResponses } from '../presenters.ts';

const entrySchema = z.object({
  position: z.number().int(),
  at: z.iso.datetime(),
  actorKind: z.enum(['user', 'api_key', 'staff', 'anonymous', 'system']),
  actorId: z.string().nullable(),
  apiKeyId: z.string().nullable(),
  grantId: z.string().nullable(),
  action: z.string(),
  resourceType: z.string().nullable(),
  resourceId: z.string().nullable(),
  outcome: z.enum(['allow', 'deny', 'error']),
  statusCode: z.number().int().nullable(),
  errorCode: z.string().nullable(),
  requestId: z.string().nullable(),
  ip: z.string().nullable(),
  userAgent: z.string().nullable(),
  changes: z.array(z.string()).nullable(),
  prevHash: z.string(),
  hash: z.string(),
});
const errors = errorResponses(400, 401, 403);

/** Strict filters: anything malformed is a 400, never a silently widened query. */
const filters = z.strictObject({
  from: z.iso.datetime().optional().describe('Entries at or after this time (ISO 8601)'),
  to: z.iso.datetime().optional().describe('Entries before this time'),
  actor: z.uuid().optional().describe('The acting user (or API key owner) id'),
  grant: z.uuid().optional().describe('Entries made under this support grant (what it did)'),
  action: z
    .string()
    .max(100)
    .regex(/^[a-z_]{1,40}(\.[a-z_]{1,40}){0,4}$/)
    .optional()
    .describe('e.g. records.read, auth.login'),
  resourceType: z
    .string()
    .max(100)
    .regex(/^[a-z_]{1,100}$/)
    .optional(),
  resourceId: z
    .string()
    .max(200)
    .regex(/^[A-Za-z0-9_.:-]{1,200}$/)
    .optional(),
  outcome: z.enum(['allow', 'deny', 'error']).optional(),
});

function present(entry: ChainedAuditEntry) {
  const { tenantId: _tenantId, ...rest } = entry;
  return { ...rest, at: entry.at.toISOString() };
}

/** The filters of the listing and of an export, as the service takes them. */
function filtersOf(query: z.infer<typeof filters>): AuditFilters {
  const from = query.from ? new Date(query.from) : undefined;
  const to = query.to ? new Date(query.to) : undefined;
  if (from && to && from >= to) throw auditErrors.invalidFilter('to', 'must be after from');
  return {
    from,
    to,
    actorId: query.actor,
    grantId: query.grant,
    action: query.action,
    resourceType: query.resourceType,
    resourceId: query.resourceId,
    outcome: query.outcome,
  };
}

/** The tenant's audit log, for account owners and admins (`audit.read`). */
export function auditRoutes(deps: { audit: AuditService }): FastifyPluginAsyncZod {
  const { audit } = deps;
  const security = [{ session: [] }];
  return async (app) => {
    app.get(
      '/audit',
      {
        schema: {
          summary: 'Search the audit log, newest first (account owner or admin)',
          tags: ['audit'],
          security,
          querystring: filters.extend({
            limit: z.coerce.number().int().min(1).max(maxAuditPageSize).default(50),
            cursor: z
              .string()
              .regex(/^[0-9]{1,15}$/)
              .optional()
              .describe('nextCursor of the previous page'),
          }),
          response: {
            200: z.object({ items: z.array(entrySchema), nextCursor: z.string().nullable() }),
            ...errors,
          },
        },
      },
      async (request) => {
        const { query } = request;
        const { cursor: _cursor, limit: _limit, ...filterQuery } = query;
        const page = await audit.search(requireUser(request).principal, {
          ...filtersOf(filterQuery),
          beforePosition: query.cursor === undefined ? undefined : Number(query.cursor),
          limit: query.limit,
        });
        return {
          items: page.items.map(present),
          nextCursor: page.nextBefore === null ? null : String(page.nextBefore),
        };
      },
    );

    app.get(
      '/audit/export',
      {
        schema: {
          summary:
            'Export the audit log with its chain proof, as JSON Lines or CSV, oldest first (account owner or admin)',
          description:
            'Every entry carries prevHash and hash. JSON Lines ends with a `{"type":"checkpoint"}` line (the head the export ends at, the latest signed checkpoint at or before it, and the public key); CSV carries the same in the `X-Audit-Checkpoint` header (base64 JSON). The listing\'s filters narrow it; a filtered export proves each entry\'s own hash, not the continuity of the chain. CSV cells a spreadsheet would run as a formula start with an added `\'`.',
          tags: ['audit'],
          security,
          querystring: filters.extend({ format: z.enum(['jsonl', 'csv']).default('jsonl') }),
          // 200 is a stream (no schema to serialize against).
          response: errors,
        },
      },
      async (request, reply) => {
        const { format, ...filterQuery } = request.query;
        const selected = filtersOf(filterQuery);
        const principal = requireUser(request).principal;
        const exported = await audit.exportChain(principal, selected);
        const filtered = Object.values(selected).some((value) => value !== undefined);
        const proof = exportProof(
          principal.tenantId,
          exported.head,
          exported.checkpoint,
          audit.signingKey,
          filtered,
        );
        async function* chunks() {
          if (format === 'csv') yield csvHeader;
          for await (const page of exported.pages) yield exportChunk(format, page);
          if (format === 'jsonl') yield `${JSON.stringify(proof)}\n`;
        }
        reply.header('x-audit-checkpoint', Buffer.from(JSON.stringify(proof)).toString('base64'));
        reply.header('content-disposition', `attachment; filename="audit.${format}"`);
        reply.type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/jsonl; charset=utf-8');
        // The typed reply only knows the error schemas; the stream is sent as is.
        return (reply as FastifyReply).status(200).send(Readable.from(chunks()));
      },
    );

    app.get(
      '/audit/verify',
      {
        schema: {
          summary:
            "Recompute the tenant's audit chain against its signed checkpoints (account owner or admin)",
          tags: ['audit'],
          security,
          response: {
            200: z.object({
              ok: z.boolean(),
              entries: z.number().int(),
              head: z.object({ position: z.number().int(), hash: z.string() }).nullable(),
              checkpoints: z.object({
                database: z.number().int(),
                objectStore: z.number().int(),
                latestPosition: z.number().int().nullable(),
              }),
              problem: z
                .object({ position: z.number().int(), class: z.string(), message: z.string() })
                .optional(),
            }),
            ...errors,
          },
        },
      },
      async (request) => {
        const { tenantId: _tenantId, ...report } = await audit.verifyOwn(requireUser(request).principal);
        return report;
      },
    );
  };
}
