import type { Migration } from '../../migrator.ts';
import { createControlPlane } from './20261122000000-create-control-plane.ts';
import { createCredentials } from './20261122010000-create-credentials.ts';
import { allowInvitationTokens } from './20261122020000-allow-invitation-tokens.ts';
import { allowApiKeyCredentials } from './20261122030000-allow-api-key-credentials.ts';
import { addStaffMfa } from './20261122040000-add-staff-mfa.ts';
import { createTenantLimits } from './20261123030000-create-tenant-limits.ts';
import { createAccessRequests } from './20261123040000-create-access-requests.ts';
import { createPlatformAuditLog } from './20261123100000-create-platform-audit-log.ts';
import { createBackupDrills } from './20261124000000-create-backup-drills.ts';
import { createRestoreJobs } from './20261125000000-create-restore-jobs.ts';

/** Control-plane migrations, oldest first. Append only; see the expand/contract note in migrator.ts. */
export const controlMigrations: readonly Migration[] = [
  createControlPlane,
  createCredentials,
  allowInvitationTokens,
  allowApiKeyCredentials,
  addStaffMfa,
  createTenantLimits,
  createAccessRequests,
  createPlatformAuditLog,
  createBackupDrills,
  createRestoreJobs,
];
