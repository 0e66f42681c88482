import type { Migration } from '../../migrator.ts';
import { createSettings } from './20261122000000-create-settings.ts';
import { createUsersAndSessions } from './20261122010000-create-users-and-sessions.ts';
import { createProjects } from './20261122020000-create-projects.ts';
import { createApiKeys } from './20261122030000-create-api-keys.ts';
import { addMfa } from './20261122040000-add-mfa.ts';
import { createRecords } from './20261122050000-create-records.ts';
import { createAttachments } from './20261123010000-create-attachments.ts';
import { createCollectionPolicies } from './20261123020000-create-collection-policies.ts';
import { createUsageCounters } from './20261123030000-create-usage-counters.ts';
import { createAuditLog } from './20261123100000-create-audit-log.ts';
import { createJournal } from './20261123110000-create-journal.ts';

/**
 * Tenant-schema migrations, oldest first, applied to every tenant by the fleet runner. Append only;
 * DDL must stay compatible with Citus schema-based sharding: no cross-schema foreign keys and no
 * `CREATE SCHEMA … CREATE TABLE`.
 */
export const tenantMigrations: readonly Migration[] = [
  createSettings,
  createUsersAndSessions,
  createProjects,
  createApiKeys,
  addMfa,
  createRecords,
  createAttachments,
  createCollectionPolicies,
  createUsageCounters,
  createAuditLog,
  createJournal,
];
