import { isUuid } from '../platform/ids.ts';

/**
 * A tenant's schema and database role are named from its id alone: `t_` + the 32 hex digits of its
 * UUID. No slug or other client input ever becomes an SQL identifier, and the result is checked
 * against the pattern again before use, so a bug upstream cannot smuggle in `public` or `pg_catalog`.
 */
const schemaPattern = /^t_[0-9a-f]{32}$/;

export function tenantSchemaName(tenantId: string): string {
  if (!isUuid(tenantId)) throw new Error('tenant id must be a lower-case UUID');
  const name = `t_${tenantId.replaceAll('-', '')}`;
  assertTenantSchemaName(name);
  return name;
}

/** The tenant's own Postgres role has the schema's name; roles are cluster-wide, UUIDs keep them unique. */
export function tenantRoleName(tenantId: string): string {
  return tenantSchemaName(tenantId);
}

export function assertTenantSchemaName(name: string): void {
  if (!schemaPattern.test(name)) throw new Error(`not a tenant schema name: ${JSON.stringify(name)}`);
}

/**
 * The schema an in-place restore keeps a tenant's previous data in until `restore confirm` drops it
 * (or `restore undo` swaps it back): `k_` + the tenant's 32 hex digits, one per tenant at a time.
 */
export function keptSchemaName(tenantId: string): string {
  return `k_${tenantSchemaName(tenantId).slice(2)}`;
}

export const controlSchema = 'control';
