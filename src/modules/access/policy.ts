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
  'usage.read',
  'access_requests.read',
  'access_requests.decide',
  'audit.read',
  'tenant.restore',
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
  'usage.read',
  'access_requests.read',
  'audit.read',
]);

/** Actions only a person signed in with a session may take, never an API key of any scope. */
export const sessionOnlyActions: ReadonlySet<Action> = new Set<Action>([
  'access_requests.decide',
  // A restore publishes a copy of all the tenant's data as a new tenant: a person decides that.
  'tenant.restore',
]);

/**
 * A support grant the tenant approved: a staff member acting in this one tenant, on its settings or on
 * named projects, reading unless the grant says write. The grant's own rows decide whether it is
 * still active; the policy decides what it opens.
 */
export interface SupportGrantScope {
  id: string;
  access: 'read' | 'write';
  /** The projects it opens; null for a settings-only grant. */
  projectIds: readonly string[] | null;
}

/** What a support grant opens, by its scope and access, as data (rendered into docs/security.md). */
export const supportGrantAllows = {
  settings: { read: ['tenant.settings.read'], write: ['tenant.settings.read', 'tenant.settings.update'] },
  projects: {
    read: ['project.read', 'project.members.read', 'records.read', 'attachments.read'],
    write: [
      'project.read',
      'project.members.read',
      'records.read',
      'attachments.read',
      'records.write',
      'attachments.write',
    ],
  },
} as const satisfies Record<'settings' | 'projects', Record<'read' | 'write', readonly Action[]>>;

/** Who is asking, as far as the policy cares. Staff never reach tenant data through this policy. */
export type AccessPrincipal =
  | {
      kind: 'user';
      tenantId: string;
      userId: string;
      role: AccountRole;
      scope?: KeyScope | undefined;
      /** Set when a staff member acts under a support grant: then the grant alone decides. */
      grant?: SupportGrantScope | undefined;
    }
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
  if (principal.grant) return decideUnderGrant(principal.grant, action, resource);
  const scope = principal.scope;
  if (scope?.projectIds) {
    // A key limited to some projects does not see the others at all, nor change anything tenant-wide.
    if (resource.isProject && (!resource.projectId || !scope.projectIds.includes(resource.projectId)))
      return 'not_found';
    if (!resource.isProject && !readActions.has(action)) return 'forbidden';
  }
  // Consent to support access is a person's decision: an API key never makes it.
  if (scope && sessionOnlyActions.has(action)) return 'forbidden';
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

/**
 * A grant opens exactly its scope: a projects grant sees only its projects (others are `not_found`,
 * as if absent) and nothing tenant-wide; a settings grant sees no project at all.
 */
function decideUnderGrant(grant: SupportGrantScope, action: Action, resource: AccessResource): Decision {
  if (grant.projectIds === null) {
    if (resource.isProject) return 'not_found';
    return (supportGrantAllows.settings[grant.access] as readonly Action[]).includes(action)
      ? 'allow'
      : 'forbidden';
  }
  if (!resource.isProject) return 'forbidden';
  if (!resource.projectId || !grant.projectIds.includes(resource.projectId)) return 'not_found';
  return (supportGrantAllows.projects[grant.access] as readonly Action[]).includes(action)
    ? 'allow'
    : 'forbidden';
}

/** `decide`, throwing the matching error unless allowed. */
export function authorize(principal: AccessPrincipal, action: Action, resource: AccessResource): void {
  const decision = decide(principal, action, resource);
  if (decision === 'forbidden') throw accessErrors.forbidden();
  if (decision === 'not_found') throw accessErrors.notFound();
}
