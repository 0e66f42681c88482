import { defineError } from '../../platform/errors.ts';

export const tenantErrors = {
  invalidSlug: defineError(
    'invalid_slug',
    'invalid',
    'A tenant slug is 3-40 characters of a-z, 0-9 and -, starting and ending with a letter or digit, and not reserved.',
    (reason: string) => ({ message: `invalid slug: ${reason}`, details: { reason } }),
  ),
  slugTaken: defineError(
    'slug_taken',
    'conflict',
    'Another tenant already has this slug.',
    (slug: string) => ({
      message: `the slug ${slug} is taken`,
      details: { slug },
    }),
  ),
  invalidName: defineError(
    'invalid_tenant_name',
    'invalid',
    'A tenant name is 1-200 characters without control characters.',
  ),
  invalidEmail: defineError(
    'invalid_email',
    'invalid',
    'An email address is malformed.',
    (field: string) => ({
      message: `${field} is not a valid email address`,
      details: { field },
    }),
  ),
  notFound: defineError('tenant_not_found', 'not_found', 'The tenant does not exist or was deleted.'),
  suspended: defineError(
    'tenant_suspended',
    'forbidden',
    'The tenant is suspended; its data cannot be used until it is resumed.',
  ),
  confirmationRequired: defineError(
    'confirmation_required',
    'invalid',
    'Deleting a tenant destroys its data and key for good; confirm with the tenant slug.',
    (slug: string) => ({
      message: `to delete this tenant, confirm with its slug (${slug})`,
      details: { slug },
    }),
  ),
  invalidTransition: defineError(
    'invalid_tenant_state',
    'conflict',
    'The tenant is not in a state that allows this.',
    (status: string, action: string) => ({
      message: `cannot ${action} a tenant that is ${status}`,
      details: { status, action },
    }),
  ),
};
