import { defineError } from '../../platform/errors.ts';

export const auditErrors = {
  invalidFilter: defineError(
    'audit_filter_invalid',
    'invalid',
    'An audit query filter is malformed (time range, actor, action, resource, outcome, limit or cursor).',
    (field: string, reason: string) => ({ message: `audit filter ${field}: ${reason}`, details: { field } }),
  ),
  verifyFailed: defineError(
    'audit_verification_failed',
    'integrity',
    'The audit chain does not match its entries or its signed checkpoints (tampering, truncation or rollback).',
    (position: number, problem: string) => ({
      message: `audit chain broken at position ${position}: ${problem}`,
      details: { position, problem },
    }),
  ),
};
