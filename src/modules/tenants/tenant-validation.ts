import { tenantErrors } from './tenant.errors.ts';

/**
 * Names that would be confusing as a tenant's public handle: words of the platform's own URL space
 * and look-alikes of database objects. A slug never becomes an SQL identifier (schemas are named from
 * the tenant id), so this is about clarity, not injection.
 */
const reservedSlugs = new Set(['public', 'control', 'api', 'admin', 'www', 'status', 'strongroom', 'system']);
const reservedPrefixes = ['pg-'];

export function assertValidSlug(slug: unknown): asserts slug is string {
  if (typeof slug !== 'string') throw tenantErrors.invalidSlug('must be a string');
  if (slug.length < 3) throw tenantErrors.invalidSlug('shorter than 3 characters');
  if (slug.length > 40) throw tenantErrors.invalidSlug('longer than 40 characters');
  if (!/^[a-z0-9-]+$/.test(slug)) throw tenantErrors.invalidSlug('only a-z, 0-9 and - are allowed');
  if (slug.startsWith('-') || slug.endsWith('-'))
    throw tenantErrors.invalidSlug('must start and end with a letter or digit');
  if (reservedSlugs.has(slug) || reservedPrefixes.some((prefix) => slug.startsWith(prefix))) {
    throw tenantErrors.invalidSlug('reserved');
  }
}

export function assertValidTenantName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.trim().length === 0 || name.length > 200 || /\p{Cc}/u.test(name)) {
    throw tenantErrors.invalidName();
  }
}

/** A deliberately plain check (one @, a dot in the domain, no spaces, ≤ 254 chars); mail delivery is the real test. */
export function normalizeEmail(email: unknown, field: string): string {
  if (typeof email !== 'string' || email.length > 254 || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
    throw tenantErrors.invalidEmail(field);
  }
  return email.toLowerCase();
}
