import type { AnyKysely } from '../../db/database.ts';
import type { WithTenant } from '../../db/with-tenant.ts';
import { defineError } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import {
  type AccessPrincipal,
  type Action,
  accessErrors,
  authorize,
  type ProjectRole,
} from '../access/policy.ts';
import { attachmentRepository } from '../attachments/attachment.repository.ts';
import { type Project, type ProjectMember, projectRepository } from './project.repository.ts';

export type UserAccess = Extract<AccessPrincipal, { kind: 'user' }>;

export const projectErrors = {
  invalidName: defineError(
    'invalid_project_name',
    'invalid',
    'A project name is 1-200 characters without control characters.',
  ),
};

/**
 * Projects and project permissions. Each operation is one `withTenant` transaction: it reads the
 * caller's role in the project, asks `authorize`, and only then reads or writes. Ids of another
 * tenant's projects or users are simply not found: they live in another schema.
 */
export class ProjectService {
  readonly #withTenant: WithTenant;

  constructor(deps: { withTenant: WithTenant }) {
    this.#withTenant = deps.withTenant;
  }

  async create(principal: UserAccess, input: { name: string }): Promise<Project> {
    authorize(principal, 'projects.create', { tenantId: principal.tenantId, isProject: false });
    const name = acceptProjectName(input.name);
    return this.#withTenant(principal.tenantId, async (scope) => {
      const project = await projectRepository.insert(scope.db, {
        id: newId(),
        name,
        createdBy: principal.userId,
      });
      await projectRepository.upsertMember(scope.db, {
        projectId: project.id,
        userId: principal.userId,
        role: 'project_admin',
        grantedBy: principal.userId,
      });
      return project;
    });
  }

  /** Account owners and admins see every project; members see the projects they belong to. */
  async list(principal: UserAccess): Promise<Array<Project & { role: ProjectRole | null }>> {
    authorize(principal, 'projects.list', { tenantId: principal.tenantId, isProject: false });
    const everything = principal.role === 'owner' || principal.role === 'admin';
    const listed = await this.#withTenant(
      principal.tenantId,
      (scope) => projectRepository.list(scope.db, principal.userId, !everything),
      { readOnly: true },
    );
    // An API key limited to some projects lists only those.
    const only = principal.scope?.projectIds;
    return only ? listed.filter((p) => only.includes(p.id)) : listed;
  }

  async get(principal: UserAccess, projectId: string): Promise<Project & { role: ProjectRole | null }> {
    return this.#inProject(
      principal,
      projectId,
      'project.read',
      async (_db, project, role) => ({ ...project, role: role ?? null }),
      true,
    );
  }

  async rename(principal: UserAccess, projectId: string, input: { name: string }): Promise<Project> {
    const name = acceptProjectName(input.name);
    return this.#inProject(principal, projectId, 'project.update', (db) =>
      projectRepository.rename(db, projectId, name),
    );
  }

  async delete(principal: UserAccess, projectId: string): Promise<void> {
    await this.#inProject(principal, projectId, 'project.delete', async (db) => {
      // The project's attachment objects outlive it by the restore window, then are purged.
      await attachmentRepository.retireProject(db, projectId);
      await projectRepository.delete(db, projectId);
    });
  }

  async listMembers(principal: UserAccess, projectId: string): Promise<ProjectMember[]> {
    return this.#inProject(
      principal,
      projectId,
      'project.members.read',
      (db) => projectRepository.listMembers(db, projectId),
      true,
    );
  }

  async getMember(principal: UserAccess, projectId: string, userId: string): Promise<ProjectMember> {
    return this.#inProject(
      principal,
      projectId,
      'project.members.read',
      async (db) => {
        const member = (await projectRepository.listMembers(db, projectId)).find((m) => m.userId === userId);
        if (!member) throw notFound();
        return member;
      },
      true,
    );
  }

  /** Grants (or changes) a user's role in the project; takes effect on their next request. */
  async putMember(
    principal: UserAccess,
    projectId: string,
    userId: string,
    role: ProjectRole,
  ): Promise<ProjectMember> {
    return this.#inProject(principal, projectId, 'project.members.manage', async (db) => {
      // The user must be a live account of this tenant: anything else is not found.
      if (!(await projectRepository.userExists(db, userId))) throw notFound();
      await projectRepository.upsertMember(db, { projectId, userId, role, grantedBy: principal.userId });
      const member = (await projectRepository.listMembers(db, projectId)).find((m) => m.userId === userId);
      return member!;
    });
  }

  async removeMember(principal: UserAccess, projectId: string, userId: string): Promise<void> {
    await this.#inProject(principal, projectId, 'project.members.manage', async (db) => {
      if (!(await projectRepository.deleteMember(db, projectId, userId))) throw notFound();
    });
  }

  /** Loads the project and the caller's role in it, authorizes `action`, then runs `work`. */
  #inProject<T>(
    principal: UserAccess,
    projectId: string,
    action: Action,
    work: (db: AnyKysely, project: Project, role: ProjectRole | undefined) => Promise<T>,
    readOnly = false,
  ): Promise<T> {
    return this.#withTenant(
      principal.tenantId,
      async (scope) => {
        const { project, role } = await authorizeInProject(scope.db, principal, projectId, action);
        return work(scope.db, project, role);
      },
      { readOnly },
    );
  }
}

const notFound = accessErrors.notFound;

/**
 * Inside a tenant scope: the project and the caller's role in it, once `authorize` allowed `action`
 * there (one query). A project of another tenant is simply not in this schema: `not_found`.
 */
export async function authorizeInProject(
  db: AnyKysely,
  principal: UserAccess,
  projectId: string,
  action: Action,
): Promise<{ project: Project; role: ProjectRole | undefined }> {
  const found = await projectRepository.findWithRole(db, projectId, principal.userId);
  if (!found) throw notFound();
  authorizeProjectRole(principal, projectId, found.role, action);
  return found;
}

/** `authorize` for `action` in a project where the caller has `role` (undefined: none). */
export function authorizeProjectRole(
  principal: UserAccess,
  projectId: string,
  role: ProjectRole | undefined,
  action: Action,
): void {
  authorize(principal, action, {
    tenantId: principal.tenantId,
    isProject: true,
    projectId,
    projectRole: role,
  });
}

function acceptProjectName(name: unknown): string {
  if (typeof name !== 'string' || name.trim().length === 0 || name.length > 200 || /\p{Cc}/u.test(name)) {
    throw projectErrors.invalidName();
  }
  return name.trim();
}
