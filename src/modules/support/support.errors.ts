import { defineError } from '../../platform/errors.ts';

export const supportErrors = {
  invalidRequest: defineError(
    'invalid_access_request',
    'invalid',
    'An access request needs a reason (10-2,000 characters), a scope (settings, or 1-20 project ids), read or write access, and a duration within the allowed maximum.',
    (field: string, reason: string) => ({
      message: `invalid access request: ${field} ${reason}`,
      details: { field },
    }),
  ),
  notPending: defineError(
    'access_request_not_pending',
    'conflict',
    'The access request was already decided, or it expired before a decision.',
    (status: string) => ({ message: `the access request is ${status}`, details: { status } }),
  ),
  notActive: defineError(
    'access_grant_not_active',
    'conflict',
    'Only an approved grant that has not ended can be revoked.',
    (status: string) => ({ message: `the grant is ${status}`, details: { status } }),
  ),
  grantUnusable: defineError(
    'support_grant_unusable',
    'forbidden',
    "The support grant is not this staff member's, or is not active (pending, denied, expired or revoked).",
    (status: string) => ({ message: `the support grant cannot be used (${status})`, details: { status } }),
  ),
  breakGlassDisabled: defineError(
    'break_glass_disabled',
    'forbidden',
    'Emergency (break-glass) access is off on this platform; an operator enables it with STRONGROOM_BREAK_GLASS=on.',
  ),
  secondPersonRequired: defineError(
    'break_glass_second_person_required',
    'forbidden',
    'Break-glass access needs a second staff member to confirm it; the requester cannot.',
  ),
  ineligible: defineError(
    'staff_not_eligible',
    'forbidden',
    'This staff member cannot receive access to tenant data (developers never can; disabled staff neither).',
  ),
};
