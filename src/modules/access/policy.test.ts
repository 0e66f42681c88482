import { describe, expect, it } from 'vitest';
import { type AccessPrincipal, type AccountRole, actions, decide, type ProjectRole } from './policy.ts';

const tenantId = 'a0000000-0000-4000-8000-000000000001';
const user = (role: AccountRole): AccessPrincipal => ({ kind: 'user', tenantId, userId: 'u', role });
const project = (projectRole?: ProjectRole) => ({ tenantId, isProject: true, projectRole });

describe('authorize: the allow matrix', () => {
  it('lets account owners and admins do everything in their own tenant', () => {
    for (const role of ['owner', 'admin'] as const) {
      for (const action of actions)
        expect(decide(user(role), action, project()), `${role} ${action}`).toBe('allow');
    }
  });

  it('gives project roles exactly their rights, and nothing outside their project', () => {
    const member = user('member');
    expect(decide(member, 'project.read', project())).toBe('not_found');
    expect(decide(member, 'project.read', project('viewer'))).toBe('allow');
    expect(decide(member, 'project.update', project('viewer'))).toBe('forbidden');
    expect(decide(member, 'project.members.read', project('viewer'))).toBe('forbidden');
    expect(decide(member, 'project.members.read', project('contributor'))).toBe('allow');
    expect(decide(member, 'project.members.manage', project('contributor'))).toBe('forbidden');
    expect(decide(member, 'project.members.manage', project('project_admin'))).toBe('allow');
    expect(decide(member, 'project.delete', project('project_admin'))).toBe('forbidden');
    expect(decide(member, 'projects.create', { tenantId, isProject: false })).toBe('forbidden');
    expect(decide(member, 'projects.list', { tenantId, isProject: false })).toBe('allow');
  });

  it("answers another tenant's resources exactly like missing ones", () => {
    const other = {
      tenantId: 'b0000000-0000-4000-8000-000000000002',
      isProject: true,
      projectRole: 'project_admin' as const,
    };
    for (const action of actions) expect(decide(user('owner'), action, other)).toBe('not_found');
  });

  it('denies staff and anonymous callers everything: staff need a customer-approved grant', () => {
    for (const principal of [{ kind: 'staff' }, { kind: 'anonymous' }] as AccessPrincipal[]) {
      for (const action of actions)
        expect(decide(principal, action, project('project_admin'))).toBe('not_found');
    }
  });

  it('keeps consent to support access for people with a session: no API key decides, whatever its scope', () => {
    const tenantWide = { tenantId, isProject: false };
    for (const role of ['owner', 'admin'] as const) {
      expect(decide(user(role), 'access_requests.decide', tenantWide)).toBe('allow');
      for (const access of ['read', 'write'] as const) {
        const key = { ...user(role), scope: { access, projectIds: null } } as AccessPrincipal;
        expect(decide(key, 'access_requests.decide', tenantWide)).toBe('forbidden');
      }
    }
    expect(decide(user('member'), 'access_requests.decide', tenantWide)).toBe('forbidden');
  });
});
