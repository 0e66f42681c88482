import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { StoredRecord } from '../../modules/records/record.repository.ts';
import { maxListLimit, type RecordService } from '../../modules/records/record.service.ts';
import { etagOf, parseIfMatch } from '../../modules/records/record-data.ts';
import { maxCursorLength } from '../../modules/records/record-sort.ts';
import { requireUser } from '../plugins/session-auth.ts';
import { errorResponseSchema, errorResponses } from '../presenters.ts';

const recordSchema = z.object({
  id: z.uuid(),
  projectId: z.uuid(),
  collection: z.string(),
  data: z.record(z.string(), z.unknown()),
  version: z.number().int(),
  createdBy: z.uuid(),
  updatedBy: z.uuid(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
const projectParams = z.strictObject({ projectId: z.uuid() });
const recordParams = z.strictObject({ projectId: z.uuid(), recordId: z.uuid() });
const ifMatchHeaders = z.object({
  'if-match': z.string().max(100).optional().describe('The ETag of the version you read ("3"), or *'),
});
const errors = errorResponses(400, 401, 403, 404, 413);
const changeErrors = { ...errors, 412: errorResponseSchema, 428: errorResponseSchema };

function present(record: StoredRecord) {
  return {
    ...record,
    createdAt: record.createdAt.toISOString(),
    updatedAt: record.updatedAt.toISOString(),
  };
}

function withEtag(reply: FastifyReply, record: StoredRecord) {
  reply.header('etag', etagOf(record.version));
  return present(record);
}

/**
 * Records of a project (tenant scope). Reading needs `records.read` in the project (viewer and up,
 * or an account owner or admin); writing `records.write` (contributor and up). Data is any JSON
 * object up to the configured size; `data` is validated by the service, not here, so its limits and
 * errors are the same for every route.
 */
export function recordRoutes(deps: { records: RecordService }): FastifyPluginAsyncZod {
  const { records } = deps;
  const security = [{ session: [] }];
  // Room for the largest record's JSON plus the envelope around it.
  const bodyLimit = records.maxBytes + 64 * 1024;
  return async (app) => {
    app.post(
      '/projects/:projectId/records',
      {
        bodyLimit,
        schema: {
          summary: 'Create a record (contributor, project admin, account owner or admin)',
          description:
            'Send `Idempotency-Key` to make retries safe: the same key and body return the first result (200, `Idempotent-Replayed: true`) instead of creating another.',
          tags: ['records'],
          security,
          params: projectParams,
          headers: z.object({ 'idempotency-key': z.string().max(200).optional() }),
          body: z.strictObject({ collection: z.string().max(100), data: z.unknown() }),
          response: { 200: recordSchema, 201: recordSchema, 409: errorResponseSchema, ...errors },
        },
      },
      async (request, reply) => {
        const { record, replayed } = await records.create(
          requireUser(request).principal,
          request.params.projectId,
          request.body,
          request.headers['idempotency-key'],
        );
        if (replayed) reply.header('idempotent-replayed', 'true');
        return reply.status(replayed ? 200 : 201).send(withEtag(reply, record));
      },
    );

    app.get(
      '/projects/:projectId/records',
      {
        schema: {
          summary:
            'List records in creation order or sorted by a field, optionally of one collection and filtered (viewer and up)',
          tags: ['records'],
          security,
          params: projectParams,
          querystring: z.strictObject({
            collection: z.string().max(100).optional(),
            filter: z
              .union([z.string().max(1100), z.array(z.string().max(1100)).max(5)])
              .optional()
              .describe(
                'field:op:value on a top-level data field; op is eq, ne, lt, lte, gt or gte; value a JSON literal, e.g. city:eq:"Paris" or visits:gte:10. Repeat for AND (at most 5).',
              ),
            sort: z
              .string()
              .max(100)
              .optional()
              .describe(
                'created_at (the default: creation order), -created_at, or a top-level data field, e.g. city or -visits (descending). Values of mixed types order null < strings < numbers < booleans < arrays < objects; records without the field come last.',
              ),
            limit: z.coerce.number().int().min(1).max(maxListLimit).default(50),
            cursor: z
              .string()
              .max(maxCursorLength)
              .optional()
              .describe('nextCursor of the previous page, with the same sort'),
          }),
          response: {
            200: z.object({ items: z.array(recordSchema), nextCursor: z.string().nullable() }),
            ...errors,
          },
        },
      },
      async (request) => {
        const page = await records.list(
          requireUser(request).principal,
          request.params.projectId,
          request.query,
        );
        return { items: page.items.map(present), nextCursor: page.nextCursor };
      },
    );

    app.get(
      '/projects/:projectId/records/:recordId',
      {
        schema: {
          summary: 'Read a record; its ETag is its version (viewer and up)',
          tags: ['records'],
          security,
          params: recordParams,
          response: { 200: recordSchema, ...errors },
        },
      },
      async (request, reply) => {
        const { projectId, recordId } = request.params;
        return withEtag(reply, await records.get(requireUser(request).principal, projectId, recordId));
      },
    );

    // PUT replaces the data, PATCH merges into it; both under the same precondition.
    for (const [method, summary, change] of [
      ['PUT', "Replace a record's data; needs If-Match (contributor and up)", 'replace'],
      [
        'PATCH',
        "Change part of a record's data (JSON Merge Patch, RFC 7396); needs If-Match (contributor and up)",
        'patch',
      ],
    ] as const) {
      app.route({
        method,
        url: '/projects/:projectId/records/:recordId',
        bodyLimit,
        schema: {
          summary,
          tags: ['records'],
          security,
          params: recordParams,
          headers: ifMatchHeaders,
          body: z.strictObject({ data: z.unknown() }),
          response: { 200: recordSchema, ...changeErrors },
        },
        handler: async (request, reply) => {
          const { projectId, recordId } = request.params;
          const version = parseIfMatch(request.headers['if-match']);
          const principal = requireUser(request).principal;
          const record = await records[change](principal, projectId, recordId, version, request.body.data);
          return withEtag(reply, record);
        },
      });
    }

    app.delete(
      '/projects/:projectId/records/:recordId',
      {
        schema: {
          summary: 'Delete a record; needs If-Match (contributor and up)',
          tags: ['records'],
          security,
          params: recordParams,
          headers: ifMatchHeaders,
          response: { 204: z.null(), ...changeErrors },
        },
      },
      async (request, reply) => {
        const { projectId, recordId } = request.params;
        const version = parseIfMatch(request.headers['if-match']);
        await records.delete(requireUser(request).principal, projectId, recordId, version);
        return reply.status(204).send(null);
      },
    );
  };
}
