import { defineError } from '../../platform/errors.ts';

export const auditErrors = {
  invalidFilter: defineError(
    'audit_filter_invalid',
    'invalid',
    'An audit query filter is contradictory (a time range that ends before it starts).',
    (field: string, reason: string) => ({ message: `audit filter ${field}: ${reason}`, details: { field } }),
  ),
  retentionTooShort: defineError(
    'audit_retention_too_short',
    'invalid',
    'Audit retention cannot be shorter than the restore window (STRONGROOM_RESTORE_WINDOW_DAYS) or longer than 10 years.',
    (minimumDays: number) => ({
      message: `audit retention must be between ${minimumDays} and 3650 days`,
      details: { minimumDays },
    }),
  ),
};
