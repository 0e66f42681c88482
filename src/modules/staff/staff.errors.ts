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
  setupTokenInvalid: defineError(
    'staff_setup_token_invalid',
    'unauthenticated',
    'The staff setup token is unknown, used or expired: ask an operator for `strongroom staff reset-mfa`.',
  ),
  setupNotStarted: defineError(
    'staff_setup_not_started',
    'conflict',
    'Start the setup first (POST /api/v1/ops/staff/setup) to get the secret for your authenticator.',
  ),
  invalidMfaCode: defineError('invalid_mfa_code', 'invalid', 'The code is wrong, expired or already used.'),
  invalidExpiry: defineError('invalid_expiry', 'invalid', 'The expiry must be in the future.'),
};
