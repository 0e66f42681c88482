import { randomBytes } from 'node:crypto';
import { MemoryCache } from '../adapters/cache/cache.memory.ts';
import { migrateControlPlane } from '../db/control-plane.ts';
import type { Database } from '../db/database.ts';
import { controlMigrations } from '../db/migrations/control/index.ts';
import { tenantMigrations } from '../db/migrations/tenant/index.ts';
import type { Migration } from '../db/migrator.ts';
import { createWithTenant, type WithTenant } from '../db/with-tenant.ts';
import { AttachmentService } from '../modules/attachments/attachment.service.ts';
import { AuditService } from '../modules/audit/audit.service.ts';
import { AuditSigner } from '../modules/audit/audit-signer.ts';
import { BackupService } from '../modules/backups/backup.service.ts';
import type { BackupLocation } from '../modules/backups/backup-format.ts';
import { RestoreJobs } from '../modules/backups/restore-jobs.ts';
import { CredentialsRepository } from '../modules/identity/credentials.repository.ts';
import { IdentityService } from '../modules/identity/identity.service.ts';
import { LoginThrottle } from '../modules/identity/login-throttle.ts';
import { MfaService } from '../modules/identity/mfa.service.ts';
import { PasswordHasher } from '../modules/identity/password-hasher.ts';
import { PrincipalCache } from '../modules/identity/principal-cache.ts';
import type { KeyProvider } from '../modules/keys/key-provider.port.ts';
import { TenantKeysRepository } from '../modules/keys/tenant-keys.repository.ts';
import { TenantKeyService } from '../modules/keys/tenant-keys.service.ts';
import { ProjectService } from '../modules/projects/project.service.ts';
import { ApiCallMeter } from '../modules/quotas/api-call-meter.ts';
import { QuotaService, type TenantLimits } from '../modules/quotas/quota.service.ts';
import { RequestLimiter } from '../modules/quotas/request-limiter.ts';
import { TenantLimitsRepository } from '../modules/quotas/tenant-limits.repository.ts';
import { CollectionPolicyService } from '../modules/records/collection-policy.service.ts';
import { RecordService } from '../modules/records/record.service.ts';
import { StaffRepository } from '../modules/staff/staff.repository.ts';
import { StaffService } from '../modules/staff/staff.service.ts';
import { AccessRequestRepository } from '../modules/support/access-request.repository.ts';
import {
  defaultSupportAccessSettings,
  SupportAccessService,
  type SupportAccessSettings,
} from '../modules/support/support-access.service.ts';
import { TenantCache } from '../modules/temporary/tenant-cache.ts';
import { FleetMigrationService } from '../modules/tenants/fleet-migration.service.ts';
import { TenantRepository } from '../modules/tenants/tenant.repository.ts';
import { TenantService } from '../modules/tenants/tenant.service.ts';
import { type Clock, systemClock } from '../platform/clock.ts';
import type { Cache } from '../ports/cache.port.ts';
import type { Mailer } from '../ports/mail.port.ts';
import type { ObjectStore } from '../ports/object-store.port.ts';

/** The services built over one database and key provider: what the server, the CLI and tests share. */
export interface Core {
  database: Database;
  withTenant: WithTenant;
  keys: TenantKeyService;
  /** The cache for temporary data, and the tenant-scoped view of it (prefixed keys, sealed values). */
  cache: Cache;
  temporary: TenantCache;
  tenants: TenantService;
  tenantRepository: TenantRepository;
  staff: StaffService;
  identity: IdentityService;
  mfa: MfaService;
  projects: ProjectService;
  records: RecordService;
  attachments: AttachmentService;
  /** The object store attachments (and later backups) are written to. */
  objects: ObjectStore;
  policies: CollectionPolicyService;
  /** Per-tenant limits, quotas and usage; the request limiter and API-call meter the HTTP app uses. */
  quotas: QuotaService;
  limiter: RequestLimiter;
  meter: ApiCallMeter;
  /** Support access with the customer's consent (requests, approvals, grants). */
  support: SupportAccessService;
  audit: AuditService;
  fleet: FleetMigrationService;
  tenantMigrations: readonly Migration[];
  backups: BackupService;
  /** Restores requested through the API, run in the background (restore-jobs.ts). */
  restoreJobs: RestoreJobs;
}

export interface CoreOptions {
  database: Database;
  keyProvider: KeyProvider;
  clock?: Clock;
  /**
   * Temporary data (login throttling, later sessions and rate limits). The runtime passes the
   * configured cache; tests and tools that pass none get an in-process one.
   */
  cache?: Cache;
  /** Sends invitations; the runtime passes the configured mailer. */
  mailer?: Mailer;
  /** The largest record data, in bytes of JSON (STRONGROOM_RECORD_MAX_BYTES); default 1 MiB. */
  recordMaxBytes?: number;
  /** Where attachment objects live (encrypted); the runtime passes the configured store. */
  objects: ObjectStore;
  /** The largest attachment in bytes (STRONGROOM_ATTACHMENT_MAX_BYTES); default 1 GiB. */
  attachmentMaxBytes?: number;
  /** Chunk size of new attachment objects; default 256 KiB (`attachmentChunkSizeBytes`). Tests only. */
  attachmentChunkSizeBytes?: number;
  /** How long retired attachment versions are kept (STRONGROOM_RESTORE_WINDOW_DAYS); default 7 days. */
  restoreWindowMs?: number;
  /** What each tenant may use unless an operator set its own limits; default `defaultTenantLimits`. */
  tenantLimits?: TenantLimits;
  /** Longest support grant and how long a request waits for a decision; default 24 h and 4 days. */
  supportAccess?: SupportAccessSettings;
  /**
   * Signs audit checkpoints; the runtime passes the configured key. Tests and tools that pass none
   * get a fresh random one (their checkpoints verify only within the same process).
   */
  auditSigner?: AuditSigner;
  audit?: {
    checkpointEveryEntries?: number;
    checkpointIntervalMs?: number;
    retentionDays?: number;
    /** The bench turns auditing off to measure its cost; nothing else does. */
    enabled?: boolean;
    onError?: (error: unknown, what: string) => void;
    /** Entries per page an export reads (tests make it small, to cross page boundaries). */
    exportPageSize?: number;
  };
  /** Where operational alerts (a failed restore drill) are mailed, through `mailer`. */
  opsEmail?: string | undefined;
  /** Where backups go (STRONGROOM_BACKUP_LOCATIONS); default none (backup commands then refuse). */
  backupLocations?: readonly BackupLocation[];
  /** Tenant migrations to use (the bench adds one); default: the shipped list. */
  tenantMigrations?: readonly Migration[];
}

/** The platform defaults (the STRONGROOM_TENANT_* settings' defaults). */
export const defaultTenantLimits: TenantLimits = {
  requestsPerSecond: 1_000,
  concurrentRequests: 64,
  maxRecords: 10_000_000,
  maxStorageBytes: 100 * 1024 ** 3,
};

/** Plain wiring, no container: each service gets exactly what it uses. */
export function composeCore(options: CoreOptions): Core {
  const { database, keyProvider } = options;
  const clock = options.clock ?? systemClock;
  const migrations = options.tenantMigrations ?? tenantMigrations;
  const tenantRepository = new TenantRepository(database.control);
  const plainWithTenant = createWithTenant(database);
  const audit = new AuditService({
    database,
    withTenant: plainWithTenant,
    tenants: tenantRepository,
    objects: options.objects,
    signer: options.auditSigner ?? new AuditSigner(randomBytes(32)),
    clock,
    ...(options.restoreWindowMs ? { minRetentionDays: Math.ceil(options.restoreWindowMs / 86_400_000) } : {}),
    ...options.audit,
  });
  // Every service gets the auditing withTenant: a write made while serving a request commits with
  // that request's audit entry (AuditService.auditWrites).
  const withTenant = audit.auditWrites(plainWithTenant);
  const keys = new TenantKeyService({
    repository: new TenantKeysRepository(database.control),
    provider: keyProvider,
  });
  const cache = options.cache ?? new MemoryCache();
  const temporary = new TenantCache({ cache, keys });
  const limitsRepository = new TenantLimitsRepository(database.control);
  const quotas = new QuotaService({
    defaults: options.tenantLimits ?? defaultTenantLimits,
    repository: limitsRepository,
    withTenant,
    clock,
  });
  const limitsOf = (tenantId: string) => quotas.limitsOf(tenantId);
  const throttle = new LoginThrottle({ cache });
  const mfa = new MfaService({ withTenant, keys, throttle });
  const credentials = new CredentialsRepository(database.control);
  const principals = new PrincipalCache({
    cache,
    keys,
    clock,
    credentials: { ofTenant: (tenantId) => credentials.liveHashesOfTenant(tenantId) },
    // Safe only when every node sees the same cache (see PrincipalCache).
    enabled: cache.kind !== 'memory' || database.kind === 'pglite',
  });
  const backups = new BackupService({
    database,
    tenants: tenantRepository,
    withTenant,
    keys,
    locations: options.backupLocations ?? [],
    migrations,
    clock,
    restoreWindowMs: options.restoreWindowMs ?? 7 * 24 * 3600_000,
    objects: options.objects,
    alerts: options.mailer && options.opsEmail ? { mailer: options.mailer, to: options.opsEmail } : undefined,
    accessCache: principals,
  });
  return {
    database,
    withTenant,
    keys,
    cache,
    temporary,
    tenants: new TenantService({
      database,
      tenants: tenantRepository,
      keys,
      migrations,
      clock,
      withTenant,
      accessCache: principals,
    }),
    tenantRepository,
    staff: new StaffService({
      staff: new StaffRepository({ control: database.control, db: database.db }),
      keyProvider,
      clock,
      throttle,
    }),
    identity: new IdentityService({
      withTenant,
      tenants: tenantRepository,
      credentials,
      hasher: new PasswordHasher(),
      throttle,
      mfa,
      principals,
      ...(options.mailer ? { mailer: options.mailer } : {}),
      clock,
    }),
    mfa,
    projects: new ProjectService({ withTenant }),
    records: new RecordService({
      withTenant,
      keys,
      temporary,
      limitsOf,
      ...(options.recordMaxBytes ? { maxBytes: options.recordMaxBytes } : {}),
    }),
    objects: options.objects,
    attachments: new AttachmentService({
      withTenant,
      keys,
      objects: options.objects,
      limitsOf,
      clock,
      ...(options.attachmentMaxBytes ? { maxBytes: options.attachmentMaxBytes } : {}),
      ...(options.attachmentChunkSizeBytes ? { chunkSizeBytes: options.attachmentChunkSizeBytes } : {}),
      ...(options.restoreWindowMs ? { restoreWindowMs: options.restoreWindowMs } : {}),
    }),
    policies: new CollectionPolicyService({ withTenant, keys }),
    quotas,
    limiter: new RequestLimiter({ temporary, limitsOf, clock }),
    meter: new ApiCallMeter({ repository: limitsRepository, clock }),
    support: new SupportAccessService({
      requests: new AccessRequestRepository(database.control),
      tenants: tenantRepository,
      withTenant,
      mailer: options.mailer,
      clock,
      settings: options.supportAccess ?? defaultSupportAccessSettings,
      grantActivity: (tenantId, grantId) => audit.grantActivity(tenantId, grantId),
    }),
    audit,
    fleet: new FleetMigrationService({ database, tenants: tenantRepository, migrations }),
    tenantMigrations: migrations,
    backups,
    restoreJobs: new RestoreJobs({ database, backups, clock, audit }),
  };
}

/**
 * Brings the control plane up to date and checks the master key, before anything serves. Safe on
 * every start: control-plane migrations are additive and serialised by an advisory lock.
 */
export async function prepareControlPlane(core: Core): Promise<void> {
  await migrateControlPlane(core.database.db, controlMigrations);
  await core.keys.verifyMasterKey();
}

/** The services the HTTP app is built from, taken from a core (the server and tests share this). */
export function appServices(core: Core) {
  return {
    tenants: core.tenants,
    staff: core.staff,
    identity: core.identity,
    mfa: core.mfa,
    projects: core.projects,
    records: core.records,
    attachments: core.attachments,
    policies: core.policies,
    quotas: core.quotas,
    limiter: core.limiter,
    meter: core.meter,
    support: core.support,
    audit: core.audit,
    backups: core.backups,
    restoreJobs: core.restoreJobs,
  };
}
