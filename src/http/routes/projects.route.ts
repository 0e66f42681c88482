import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ProjectMember } from '../../modules/projects/project.repository.ts';
import type { ProjectService } from '../../modules/projects/project.service.ts';
import { requireUser } from '../plugins/session-auth.ts';
import { errorResponses } from '../presenters.ts';

const projectRole = z.enum(['project_admin', 'contributor', 'viewer']);
const projectSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  createdBy: z.uuid(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  role: projectRole
    .nullable()
    .describe("The caller's role in the project (null: none, seen as an account admin)"),
});
const memberSchema = z.object({
  userId: z.uuid(),
  email: z.string(),
  displayName: z.string(),
  role: projectRole,
  grantedBy: z.uuid(),
  grantedAt: z.iso.datetime(),
});
const projectParams = z.strictObject({ projectId: z.uuid() });
const memberParams = z.strictObject({ projectId: z.uuid(), userId: z.uuid() });
const errors = errorResponses(400, 401, 403, 404);

function presentProject(p: {
  id: string;
  name: string;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  role?: string | null;
}) {
  return {
    id: p.id,
    name: p.name,
    createdBy: p.createdBy,
    createdAt: p.createdAt.toISOString(),
    updatedAt: p.updatedAt.toISOString(),
    role: (p.role ?? null) as z.infer<typeof projectRole> | null,
  };
}

function presentMember(m: ProjectMember) {
  return { ...m, grantedAt: m.grantedAt.toISOString() };
}

/**
 * Projects and project permissions (tenant scope: a session is required). Who may do what is the
 * allow matrix in modules/access/policy.ts; ids of other tenants' projects answer 404 like unknown ids.
 */
export function projectRoutes(deps: { projects: ProjectService }): FastifyPluginAsyncZod {
  const { projects } = deps;
  const security = [{ session: [] }];
  return async (app) => {
    app.post(
      '/projects',
      {
        schema: {
          summary: 'Create a project (account owner or admin)',
          tags: ['projects'],
          security,
          body: z.strictObject({ name: z.string().max(1000) }),
          response: { 201: projectSchema, ...errors },
        },
      },
      async (request, reply) => {
        const project = await projects.create(requireUser(request).principal, request.body);
        return reply.status(201).send(presentProject({ ...project, role: 'project_admin' }));
      },
    );

    app.get(
      '/projects',
      {
        schema: {
          summary: 'List the projects visible to the caller (all of them for account owners and admins)',
          tags: ['projects'],
          security,
          response: { 200: z.object({ items: z.array(projectSchema) }), ...errors },
        },
      },
      async (request) => ({
        items: (await projects.list(requireUser(request).principal)).map(presentProject),
      }),
    );

    app.get(
      '/projects/:projectId',
      {
        schema: {
          summary: 'Read a project (any project role, or account owner/admin)',
          tags: ['projects'],
          security,
          params: projectParams,
          response: { 200: projectSchema, ...errors },
        },
      },
      async (request) =>
        presentProject(await projects.get(requireUser(request).principal, request.params.projectId)),
    );

    app.patch(
      '/projects/:projectId',
      {
        schema: {
          summary: 'Rename a project (project admin, or account owner/admin)',
          tags: ['projects'],
          security,
          params: projectParams,
          body: z.strictObject({ name: z.string().max(1000) }),
          response: { 200: projectSchema, ...errors },
        },
      },
      async (request) =>
        presentProject(
          await projects.rename(requireUser(request).principal, request.params.projectId, request.body),
        ),
    );

    app.delete(
      '/projects/:projectId',
      {
        schema: {
          summary: 'Delete a project (account owner or admin)',
          tags: ['projects'],
          security,
          params: projectParams,
          response: { 204: z.null(), ...errors },
        },
      },
      async (request, reply) => {
        await projects.delete(requireUser(request).principal, request.params.projectId);
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/projects/:projectId/members',
      {
        schema: {
          summary: "List a project's members (project admin or contributor, or account owner/admin)",
          tags: ['projects'],
          security,
          params: projectParams,
          response: { 200: z.object({ items: z.array(memberSchema) }), ...errors },
        },
      },
      async (request) => ({
        items: (await projects.listMembers(requireUser(request).principal, request.params.projectId)).map(
          presentMember,
        ),
      }),
    );

    app.get(
      '/projects/:projectId/members/:userId',
      {
        schema: {
          summary: "Read one member's project role",
          tags: ['projects'],
          security,
          params: memberParams,
          response: { 200: memberSchema, ...errors },
        },
      },
      async (request) =>
        presentMember(
          await projects.getMember(
            requireUser(request).principal,
            request.params.projectId,
            request.params.userId,
          ),
        ),
    );

    app.put(
      '/projects/:projectId/members/:userId',
      {
        schema: {
          summary: "Grant or change a user's project role (project admin, or account owner/admin)",
          tags: ['projects'],
          security,
          params: memberParams,
          body: z.strictObject({ role: projectRole }),
          response: { 200: memberSchema, ...errors },
        },
      },
      async (request) =>
        presentMember(
          await projects.putMember(
            requireUser(request).principal,
            request.params.projectId,
            request.params.userId,
            request.body.role,
          ),
        ),
    );

    app.delete(
      '/projects/:projectId/members/:userId',
      {
        schema: {
          summary: "Revoke a user's project role (project admin, or account owner/admin)",
          tags: ['projects'],
          security,
          params: memberParams,
          response: { 204: z.null(), ...errors },
        },
      },
      async (request, reply) => {
        await projects.removeMember(
          requireUser(request).principal,
          request.params.projectId,
          request.params.userId,
        );
        return reply.status(204).send(null);
      },
    );
  };
}
