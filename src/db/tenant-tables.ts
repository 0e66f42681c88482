import type { ColumnType, Kysely } from 'kysely';
import type { AnyKysely } from './database.ts';

/** Kysely's view of a tenant schema (bound with `withSchema` by `withTenant`). */
export interface TenantTables {
  settings: { key: string; value: unknown; updated_at: Timestamp };
  users: UsersTable;
  sessions: SessionsTable;
  projects: ProjectsTable;
  project_members: ProjectMembersTable;
  api_keys: ApiKeysTable;
  mfa_recovery_codes: MfaRecoveryCodesTable;
  records: RecordsTable;
  record_idempotency: RecordIdempotencyTable;
  attachments: AttachmentsTable;
  attachment_versions: AttachmentVersionsTable;
  collection_policies: CollectionPoliciesTable;
  usage_counters: UsageCountersTable;
}

/** A handle from `withTenant` (bound to the tenant's schema), typed with the tenant tables. */
export function tenantDb(db: AnyKysely): Kysely<TenantTables> {
  return db as Kysely<TenantTables>;
}

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface UsersTable {
  id: string;
  email: string;
  display_name: string;
  status: 'invited' | 'active' | 'disabled';
  role: 'owner' | 'admin' | 'member';
  password_hash: string | null;
  /** The TOTP secret, encrypted with the tenant key (`enc:v1:…`); set at enrolment. */
  mfa_secret: string | null;
  /** Set once the first code confirmed the enrolment; only then does login ask for a code. */
  mfa_enabled_at: Timestamp | null;
  /** The last accepted TOTP time step: a code of that step or earlier is a replay. */
  mfa_last_step: ColumnType<string | null, number | null | undefined, number | null>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  token_hash: Uint8Array;
  created_at: Timestamp;
  last_seen_at: Timestamp;
  idle_expires_at: Timestamp;
  absolute_expires_at: Timestamp;
  revoked_at: Timestamp | null;
  source_ip: string | null;
  user_agent: string | null;
}

export interface ProjectsTable {
  id: string;
  name: string;
  created_by: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ProjectMembersTable {
  project_id: string;
  user_id: string;
  role: 'project_admin' | 'contributor' | 'viewer';
  granted_by: string;
  granted_at: Timestamp;
}

export interface ApiKeysTable {
  id: string;
  user_id: string;
  name: string;
  key_hash: Uint8Array;
  prefix: string;
  last4: string;
  access: 'read' | 'write';
  project_ids: string[] | null;
  expires_at: Timestamp | null;
  revoked_at: Timestamp | null;
  created_at: Timestamp;
}

export interface MfaRecoveryCodesTable {
  user_id: string;
  code_hash: Uint8Array;
  used_at: Timestamp | null;
  created_at: Timestamp;
}

export interface RecordsTable {
  id: string;
  /** bigint identity: read back as a string, never written. */
  seq: ColumnType<string, never, never>;
  project_id: string;
  collection: string;
  /** Written as a JSON string (`JSON.stringify`), read back parsed. */
  data: ColumnType<Record<string, unknown>, string, string>;
  version: ColumnType<number, number | undefined, number>;
  created_by: string;
  updated_by: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface RecordIdempotencyTable {
  project_id: string;
  user_id: string;
  key: string;
  request_hash: Uint8Array;
  record_id: string;
  created_at: Timestamp;
}

export interface AttachmentsTable {
  id: string;
  /** bigint identity: read back as a string, never written. */
  seq: ColumnType<string, never, never>;
  project_id: string;
  record_id: string | null;
  version: ColumnType<number, number | undefined, number>;
  created_by: string;
  updated_by: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: Timestamp | null;
}

export interface AttachmentVersionsTable {
  attachment_id: string;
  version: number;
  project_id: string;
  object_key: string;
  filename: string;
  content_type: string;
  /** bigint: read back as a string. */
  size_bytes: ColumnType<string, number, never>;
  sha256: Uint8Array;
  chunk_size_bytes: number;
  key_version: number;
  created_by: string;
  created_at: Timestamp;
  retired_at: Timestamp | null;
  purged_at: Timestamp | null;
}

export interface CollectionPoliciesTable {
  project_id: string;
  collection: string;
  version: number;
  /** Top-level record fields stored encrypted (`enc:v1:…`), in the order the policy lists them. */
  sensitive: string[];
  /** Top-level record fields holding personal data (for the anonymizer and GDPR export). */
  personal: string[];
  created_by: string;
  created_at: Timestamp;
}

export interface UsageCountersTable {
  slot: number;
  records: ColumnType<string, number | string, number | string>;
  record_bytes: ColumnType<string, number | string, number | string>;
  attachment_bytes: ColumnType<string, number | string, number | string>;
}
