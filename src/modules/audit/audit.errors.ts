import { defineError } from '../../platform/errors.ts';

export const auditErrors = {
  invalidFilter: defineError(
    'audit_filter_invalid',
    'invalid',
    'An audit query filter is contradictory (a time range that ends before it starts).',
    (field: string, reason: string) => ({ message: `audit filter ${field}: ${reason}`, details: { field } }),
  ),
};
