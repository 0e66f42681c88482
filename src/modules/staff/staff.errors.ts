import { commonErrors, defineError } from '../../platform/errors.ts';

export const staffErrors = {
  invalidRole: defineError(
    'invalid_staff_role',
    'invalid',
    'A staff role is one of operator, support, security, developer.',
  ),
  invalidName: defineError(
    'invalid_display_name',
    'invalid',
    'A display name is 1-200 characters without control characters.',
  ),
  emailTaken: defineError('staff_email_taken', 'conflict', 'A staff member with this email already exists.'),
  unauthenticated: commonErrors.unauthenticated,
  notFound: defineError('staff_not_found', 'not_found', 'No staff member has that email.'),
  forbidden: defineError('forbidden', 'forbidden', 'Your role does not allow this action.'),
};
