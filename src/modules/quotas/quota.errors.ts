import { defineError } from '../../platform/errors.ts';

export const quotaErrors = {
  rateLimited: defineError(
    'rate_limited',
    'rate_limited',
    'The tenant is over its request rate or its concurrent requests; retry after Retry-After seconds. Other tenants are not affected.',
    (retryAfterSeconds: number, reason: 'rate' | 'concurrency') => ({
      message:
        reason === 'rate'
          ? `the tenant is over its request rate; retry in ${retryAfterSeconds} s`
          : `the tenant has too many requests in progress; retry in ${retryAfterSeconds} s`,
      details: { retryAfterSeconds, reason },
    }),
  ),
  quotaExceeded: defineError(
    'quota_exceeded',
    'too_large',
    'The change would take the tenant over its record or storage quota; delete data or ask the operator to raise the quota.',
    (quota: 'records' | 'storage_bytes', limit: number) => ({
      message: `the tenant's ${quota === 'records' ? 'record' : 'storage'} quota (${limit}) would be exceeded`,
      details: { quota, limit },
    }),
  ),
  invalidLimits: defineError(
    'invalid_limits',
    'invalid',
    'Tenant limits are whole numbers in range, or null for the platform default.',
    (field: string) => ({ message: `invalid tenant limit: ${field}`, details: { field } }),
  ),
};
