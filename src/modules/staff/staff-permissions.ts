import type { StaffRole } from './staff.repository.ts';

/**
 * What each staff role may do in the operator API, as data (rendered into docs/security.md). Deny
 * by default: an action missing here is refused for every role. None of these opens tenant data:
 * that takes a customer-approved support grant (a later issue).
 */
export const staffPermissions = {
  'tenants.read': ['operator', 'support', 'security'],
  'tenants.create': ['operator'],
  'tenants.suspend': ['operator', 'security'],
  'tenants.delete': ['operator'],
  // Quotas and rate limits are capacity decisions: operators make them.
  'tenants.limits': ['operator'],
  // Restoring publishes a tenant's data as it was into a new tenant; backup status is health.
  'tenants.restore': ['operator'],
  'backups.read': ['operator', 'security'],
  // Aggregate request metrics (no tenant data), for the platform's monitoring.
  'metrics.read': ['operator', 'security'],
  // Asking a tenant for access to its data (granted only by the tenant's owners or admins; developers
  // can never receive a grant). Also lists one's own requests.
  'support.request': ['support', 'operator'],
  // Emergency access when an operator enabled it: asked by one person, confirmed by another.
  'support.break_glass': ['support', 'operator', 'security'],
  'support.break_glass_confirm': ['operator', 'security'],
  // Who has platform access is the security team's to grant; operators run tenants, not people.
  'staff.read': ['operator', 'security'],
  'staff.manage': ['security'],
} as const satisfies Record<string, readonly StaffRole[]>;

export type StaffAction = keyof typeof staffPermissions;

export function canStaff(role: StaffRole, action: StaffAction): boolean {
  return (staffPermissions[action] as readonly StaffRole[]).includes(role);
}
