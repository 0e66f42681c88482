import { defineError } from '../../platform/errors.ts';

/**
 * The one authorization policy. Every allow/deny in the tenant API is decided by `authorize`, deny
 * by default, from the allow matrix below, which is data (docs/security.md renders it).
 */
export type AccountRole = 'owner' | 'admin' | 'member';
export type ProjectRole = 'project_admin' | 'contributor' | 'viewer';

export const actions = [
  'tenant.settings.read',
  'tenant.settings.update',
  'users.list',
  'users.invite',
  'users.manage',
  'projects.create',
  'projects.list',
  'project.read',
  'project.update',
  'project.delete',
  'project.members.read',
  'project.members.manage',
  'records.read',
  'records.write',
  'attachments.read',
  'attachments.write',
  'audit.read',
] as const;

export type Action = (typeof actions)[number];

/** What each account role may do on every project of its own tenant. */
export const accountRoleAllows: Record<AccountRole, readonly Action[]> = {
  owner: actions,
  admin: actions,
  member: ['projects.list'],
};

/** What each project role adds within that one project. */
export const projectRoleAllows: Record<ProjectRole, readonly Action[]> = {
  project_admin: [
    'project.read',
    'project.update',
    'project.members.read',
    'project.members.manage',
    'records.read',
    'records.write',
    'attachments.read',
    'attachments.write',
  ],
  contributor: [
    'project.read',
    'project.members.read',
    'records.read',
    'records.write',
    'attachments.read',
    'attachments.write',
  ],
  viewer: ['project.read', 'records.read', 'attachments.read'],
};

/**
 * What an API key narrows its user's rights to: `read` keeps only reading actions; a project list
 * keeps only those projects (and no tenant-wide changes).
 */
export interface KeyScope {
  access: 'read' | 'write';
  projectIds: readonly string[] | null;
}

/** Actions that only read: all a `read` key may do. */
export const readActions: ReadonlySet<Action> = new Set<Action>([
  'tenant.settings.read',
  'users.list',
  'projects.list',
  'project.read',
  'project.members.read',
  'records.read',
  'attachments.read',
  'audit.read',
]);

/** Who is asking, as far as the policy cares. Staff never reach tenant data through this policy. */
export type AccessPrincipal =
  | { kind: 'user'; tenantId: string; userId: string; role: AccountRole; scope?: KeyScope | undefined }
  | { kind: 'staff' }
  | { kind: 'anonymous' };

/** What is asked about: the tenant it lives in, and (for one project) the caller's role there. */
export interface AccessResource {
  tenantId: string;
  /** The caller's role in the project, undefined when not a member (or for tenant-wide actions). */
  projectRole?: ProjectRole | undefined;
  /** Whether the action is about one project. */
  isProject: boolean;
  /** The project's id, when it is about one (API keys may be limited to some projects). */
  projectId?: string | undefined;
}

export const accessErrors = {
  forbidden: defineError('forbidden', 'forbidden', 'Your role does not allow this action.'),
  notFound: defineError('not_found', 'not_found', 'The resource does not exist or is not visible to you.'),
};

export type Decision = 'allow' | 'forbidden' | 'not_found';

/**
 * Decides, never throws. Another tenant's resource, or a project the caller cannot even read, is
 * `not_found`: exactly what a non-existent id gets, so ids cannot be probed. A visible resource the
 * caller may not change is `forbidden`.
 */
export function decide(principal: AccessPrincipal, action: Action, resource: AccessResource): Decision {
  // Staff are a separate realm: no staff credential opens tenant data by itself (support access
  // needs a customer-approved grant, which is a later part of the product).
  if (principal.kind !== 'user') return 'not_found';
  if (principal.tenantId !== resource.tenantId) return 'not_found';
  const scope = principal.scope;
  if (scope?.projectIds) {
    // A key limited to some projects does not see the others at all, nor change anything tenant-wide.
    if (resource.isProject && (!resource.projectId || !scope.projectIds.includes(resource.projectId)))
      return 'not_found';
    if (!resource.isProject && !readActions.has(action)) return 'forbidden';
  }
  const allowed = new Set<Action>(accountRoleAllows[principal.role]);
  if (resource.isProject && resource.projectRole) {
    for (const granted of projectRoleAllows[resource.projectRole]) allowed.add(granted);
  }
  if (scope?.access === 'read' && !readActions.has(action)) {
    return !resource.isProject || allowed.has('project.read') ? 'forbidden' : 'not_found';
  }
  if (allowed.has(action)) return 'allow';
  const canSee = !resource.isProject || allowed.has('project.read');
  return canSee ? 'forbidden' : 'not_found';
}

/** `decide`, throwing the matching error unless allowed. */
export function authorize(principal: AccessPrincipal, action: Action, resource: AccessResource): void {
  const decision = decide(principal, action, resource);
  if (decision === 'forbidden') throw accessErrors.forbidden();
  if (decision === 'not_found') throw accessErrors.notFound();
}
