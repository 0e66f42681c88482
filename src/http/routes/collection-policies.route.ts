import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { CollectionPolicy } from '../../modules/records/collection-policy.repository.ts';
import {
  type CollectionPolicyService,
  type CurrentPolicy,
  maxPolicyFields,
  maxPolicyVersionsPage,
} from '../../modules/records/collection-policy.service.ts';
import { etagOf, parseIfMatch } from '../../modules/records/record-data.ts';
import { requireUser } from '../plugins/session-auth.ts';
import { errorResponseSchema, errorResponses } from '../presenters.ts';

const fieldList = z.array(z.string().max(100)).max(maxPolicyFields);
const policySchema = z.object({
  projectId: z.uuid(),
  collection: z.string(),
  version: z.number().int().describe('0 while no policy was ever set'),
  sensitive: z.array(z.string()).describe('Stored encrypted with the tenant key; not filterable or sortable'),
  personal: z.array(z.string()).describe('Personal data, for the anonymizer and GDPR export'),
  createdBy: z.uuid().nullable(),
  createdAt: z.iso.datetime().nullable(),
});
const policyParams = z.strictObject({ projectId: z.uuid(), collection: z.string().max(100) });
const errors = errorResponses(400, 401, 403, 404);

function present(policy: CurrentPolicy | CollectionPolicy) {
  return { ...policy, createdAt: policy.createdAt?.toISOString() ?? null };
}

/**
 * Collection policies (tenant scope): which top-level record fields are sensitive (encrypted at rest)
 * or personal. Reading needs `records.read` in the project; setting needs `project.update` (project
 * admins, account owners and admins). Versioned: every PUT writes the next version; the ETag is it.
 */
export function collectionPolicyRoutes(deps: { policies: CollectionPolicyService }): FastifyPluginAsyncZod {
  const { policies } = deps;
  const security = [{ session: [] }];
  const url = '/projects/:projectId/collections/:collection/policy';
  return async (app) => {
    app.get(
      url,
      {
        schema: {
          summary: "A collection's current policy; version 0 when none was set (viewer and up)",
          tags: ['records'],
          security,
          params: policyParams,
          response: { 200: policySchema, ...errors },
        },
      },
      async (request, reply) => {
        const { projectId, collection } = request.params;
        const policy = await policies.get(requireUser(request).principal, projectId, collection);
        if (policy.version > 0) reply.header('etag', etagOf(policy.version));
        return present(policy);
      },
    );

    app.put(
      url,
      {
        schema: {
          summary:
            "Set a collection's policy (project admin, account owner or admin); needs If-Match once one exists",
          description:
            'Writes the next version. Values of fields newly marked sensitive are encrypted in the same transaction, and values of fields no longer sensitive decrypted, so stored data always matches the current policy. Without If-Match only while no policy exists (428 otherwise); If-Match must name the current version, or be * while one exists (412 otherwise).',
          tags: ['records'],
          security,
          params: policyParams,
          headers: z.object({
            'if-match': z
              .string()
              .max(100)
              .optional()
              .describe('The ETag of the policy you read ("3"), or *'),
          }),
          body: z.strictObject({ sensitive: fieldList.default([]), personal: fieldList.default([]) }),
          response: {
            200: policySchema,
            ...errors,
            412: errorResponseSchema,
            428: errorResponseSchema,
          },
        },
      },
      async (request, reply) => {
        const { projectId, collection } = request.params;
        const header = request.headers['if-match'];
        const ifMatch = header === undefined ? undefined : { version: parseIfMatch(header) };
        const { policy } = await policies.put(
          requireUser(request).principal,
          projectId,
          collection,
          ifMatch,
          request.body,
        );
        reply.header('etag', etagOf(policy.version));
        return present(policy);
      },
    );

    app.get(
      `${url}/versions`,
      {
        schema: {
          summary:
            "A collection policy's history, newest first: who set each version, and when (viewer and up)",
          tags: ['records'],
          security,
          params: policyParams,
          querystring: z.strictObject({
            limit: z.coerce.number().int().min(1).max(maxPolicyVersionsPage).default(50),
            before: z.coerce
              .number()
              .int()
              .min(1)
              .max(2 ** 31 - 1)
              .optional()
              .describe('Only versions older than this one: nextBefore of the previous page'),
          }),
          response: {
            200: z.object({ items: z.array(policySchema), nextBefore: z.number().int().nullable() }),
            ...errors,
          },
        },
      },
      async (request) => {
        const { projectId, collection } = request.params;
        const { limit, before } = request.query;
        const items = await policies.listVersions(requireUser(request).principal, projectId, collection, {
          limit,
          beforeVersion: before,
        });
        const last = items.at(-1);
        return {
          items: items.map(present),
          nextBefore: items.length === limit && last && last.version > 1 ? last.version : null,
        };
      },
    );
  };
}
