import { defineError } from '../../platform/errors.ts';

export const identityErrors = {
  passwordTooShort: defineError(
    'password_too_short',
    'invalid',
    'The password is too short: at least 15 characters, or 8 when the account has MFA.',
    (minimum: number) => ({
      message: `the password must have at least ${minimum} characters`,
      details: { minimum },
    }),
  ),
  passwordTooLong: defineError('password_too_long', 'invalid', 'The password is longer than 1,024 bytes.'),
  passwordCommon: defineError(
    'password_too_common',
    'invalid',
    'The password is too common or too easy to guess (a well-known password, a repeated or sequential pattern, or the account’s own email or tenant).',
  ),
  invalidCredentials: defineError(
    'invalid_credentials',
    'unauthenticated',
    'The tenant, email or password is wrong, or the account cannot sign in.',
  ),
  throttled: defineError(
    'login_throttled',
    'rate_limited',
    'Too many failed sign-ins: wait before trying again (Retry-After). After 100 consecutive failures the account is locked for an hour.',
    (retryAfterSeconds: number, reason: 'backoff' | 'locked' | 'source') => ({
      message:
        reason === 'locked'
          ? `too many failed sign-ins: locked; retry in ${retryAfterSeconds} s`
          : `too many failed sign-ins; retry in ${retryAfterSeconds} s`,
      details: { retryAfterSeconds, reason },
    }),
  ),
  busy: defineError(
    'login_busy',
    'rate_limited',
    'Too many sign-ins are being checked right now; retry in a moment.',
  ),
  setupTokenInvalid: defineError(
    'setup_token_invalid',
    'unauthenticated',
    'The setup token is unknown, used or expired.',
  ),
  invalidDisplayName: defineError(
    'invalid_display_name',
    'invalid',
    'A display name is 1-200 characters without control characters.',
  ),
  sessionRequired: defineError(
    'session_required',
    'forbidden',
    'Only a signed-in session may do this (not an API key).',
  ),
  invalidExpiry: defineError('invalid_expiry', 'invalid', 'The expiry must be in the future.'),
  mfaRequired: defineError(
    'mfa_required',
    'unauthenticated',
    'This account has two-factor authentication: send the current `totp` code or a `recoveryCode` with the password.',
  ),
  invalidMfaCode: defineError('invalid_mfa_code', 'invalid', 'The code is wrong, expired or already used.'),
  mfaAlreadyEnabled: defineError(
    'mfa_already_enabled',
    'conflict',
    'Two-factor authentication is already on for this account.',
  ),
  mfaNotEnrolled: defineError(
    'mfa_not_enrolled',
    'conflict',
    'Start the enrolment first (POST /api/v1/me/mfa).',
  ),
  mfaEnrollmentRequired: defineError(
    'mfa_enrollment_required',
    'forbidden',
    'This tenant requires two-factor authentication: enrol first (POST /api/v1/me/mfa, then /api/v1/me/mfa/confirm).',
  ),
  userExists: defineError('user_exists', 'conflict', 'This tenant already has an account with that email.'),
  tenantSuspended: defineError(
    'tenant_suspended',
    'forbidden',
    'The tenant is suspended; its data cannot be used until it is resumed.',
  ),
  ownAccount: defineError(
    'own_account',
    'conflict',
    'You cannot change your own role or status, or reset your own second factor: ask another owner or admin.',
  ),
  lastOwner: defineError(
    'last_owner',
    'conflict',
    'The tenant must keep at least one active owner: make someone else owner first.',
  ),
  invitationPending: defineError(
    'invitation_pending',
    'conflict',
    'This person has not accepted their invitation yet, so their account cannot be enabled or disabled.',
  ),
  mfaNotEnabled: defineError(
    'mfa_not_enabled',
    'conflict',
    'Two-factor authentication is not on for this account.',
  ),
};
