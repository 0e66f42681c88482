import type { ColumnType, Generated } from 'kysely';

/** Kysely's view of the control-plane schema `control`. Column names are snake_case as in SQL. */
export interface ControlTables {
  tenants: TenantsTable;
  tenant_keys: TenantKeysTable;
  key_check: KeyCheckTable;
  staff: StaffTable;
  staff_keys: StaffKeysTable;
  setup_tokens: SetupTokensTable;
  leases: LeasesTable;
  migration_runs: MigrationRunsTable;
  credentials: CredentialsTable;
  tenant_limits: TenantLimitsTable;
  tenant_api_calls: TenantApiCallsTable;
  access_requests: AccessRequestsTable;
  backup_drills: BackupDrillsTable;
  restore_jobs: RestoreJobsTable;
}

export interface BackupDrillsTable {
  id: string;
  tenant_id: string;
  restore_at: Timestamp;
  locations: string[];
  started_at: Timestamp;
  finished_at: Timestamp;
  outcome: 'passed' | 'failed';
  tables: ColumnType<unknown, string, string>;
  message: string | null;
}

export interface RestoreJobsTable {
  id: string;
  tenant_id: string;
  origin: 'tenant' | 'operator';
  requested_by_kind: 'user' | 'staff';
  requested_by_id: string;
  request_id: string | null;
  restore_at: Timestamp;
  into_slug: string;
  into_name: string | null;
  from_location: string | null;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  phase: string;
  /** bigint: Postgres returns it as text. */
  progress_done: ColumnType<string | number, number | undefined, number>;
  progress_total: ColumnType<string | number, number | undefined, number>;
  holder: string | null;
  created_at: Timestamp;
  started_at: NullableTimestamp;
  progress_at: NullableTimestamp;
  finished_at: NullableTimestamp;
  result: ColumnType<unknown, string | null, string | null>;
  error_code: string | null;
  error_message: string | null;
}

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null, Date | string | null>;

export interface TenantsTable {
  id: string;
  slug: string | null;
  name: string | null;
  status: 'active' | 'suspended' | 'deleted';
  created_at: ColumnType<Date, Date | string | undefined, never>;
  updated_at: Timestamp;
  deleted_at: Timestamp | null;
  schema_version: string | null;
  migration_status: 'ok' | 'failed';
  migration_error: string | null;
  migrated_at: Timestamp | null;
}

export interface TenantKeysTable {
  tenant_id: string;
  version: number;
  kek_id: string;
  wrapped: Uint8Array;
  created_at: ColumnType<Date, Date | string | undefined, never>;
  rewrapped_at: Timestamp | null;
}

export interface KeyCheckTable {
  id: number;
  kek_id: string;
  sealed: Uint8Array;
  created_at: ColumnType<Date, Date | string | undefined, never>;
}

export interface StaffTable {
  id: string;
  email: string;
  display_name: string;
  role: 'operator' | 'support' | 'security' | 'developer';
  status: 'active' | 'disabled';
  created_at: ColumnType<Date, Date | string | undefined, never>;
  mfa_secret: Uint8Array | null;
  mfa_kek_id: string | null;
  mfa_enabled_at: Timestamp | null;
  mfa_last_step: ColumnType<string | null, number | string | null, number | string | null>;
  setup_token_hash: Uint8Array | null;
  setup_expires_at: Timestamp | null;
}

export interface StaffKeysTable {
  id: string;
  staff_id: string;
  name: string;
  key_hash: Uint8Array;
  prefix: string;
  last4: string;
  created_at: ColumnType<Date, Date | string | undefined, never>;
  expires_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

export interface SetupTokensTable {
  token_hash: Uint8Array;
  tenant_id: string;
  purpose: 'owner_setup' | 'invitation';
  email: string;
  expires_at: Timestamp;
  used_at: Timestamp | null;
  created_at: ColumnType<Date, Date | string | undefined, never>;
}

export interface LeasesTable {
  name: string;
  holder: string;
  acquired_at: Timestamp;
  expires_at: Timestamp;
}

export interface MigrationRunsTable {
  id: string;
  holder: string;
  target: string;
  status: 'running' | 'succeeded' | 'failed' | 'aborted';
  started_at: Timestamp;
  finished_at: Timestamp | null;
  tenants_total: number;
  tenants_migrated: Generated<number>;
  tenants_failed: Generated<number>;
}

export interface CredentialsTable {
  token_hash: Uint8Array;
  kind: 'session' | 'api_key';
  tenant_id: string;
  expires_at: Timestamp;
  created_at: ColumnType<Date, Date | string | undefined, never>;
}

export interface TenantLimitsTable {
  tenant_id: string;
  requests_per_second: number | null;
  concurrent_requests: number | null;
  max_records: ColumnType<string | null, number | string | null, number | string | null>;
  max_storage_bytes: ColumnType<string | null, number | string | null, number | string | null>;
  updated_at: Timestamp;
  updated_by: string | null;
}

export interface TenantApiCallsTable {
  tenant_id: string;
  /** A UTC day, `yyyy-mm-dd`. */
  day: ColumnType<string, string, string>;
  calls: ColumnType<string, number | string, number | string>;
}

export interface AccessRequestsTable {
  id: string;
  kind: ColumnType<'consent' | 'break_glass', 'consent' | 'break_glass' | undefined, never>;
  tenant_id: string;
  staff_id: string;
  reason: string;
  ticket: string | null;
  scope_kind: 'settings' | 'projects';
  project_ids: string[];
  access: 'read' | 'write';
  duration_seconds: number;
  status: 'pending' | 'approved' | 'denied' | 'revoked';
  requested_at: Timestamp;
  pending_until: Timestamp;
  decided_at: Timestamp | null;
  decided_by: string | null;
  starts_at: Timestamp | null;
  ends_at: Timestamp | null;
  revoked_at: Timestamp | null;
  revoked_by: string | null;
  acting_user_id: string | null;
  confirmed_by_staff: string | null;
  summary_sent_at: Timestamp | null;
}
