import type { Database } from '../../db/database.ts';
import { controlMigrations } from '../../db/migrations/control/index.ts';
import type { Migration } from '../../db/migrator.ts';
import type { WithTenant } from '../../db/with-tenant.ts';
import type { Clock } from '../../platform/clock.ts';
import { isUuid } from '../../platform/ids.ts';
import type { Mailer } from '../../ports/mail.port.ts';
import type { ObjectStore } from '../../ports/object-store.port.ts';
import { type AccessPrincipal, authorize } from '../access/policy.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import type { Tenant, TenantRepository } from '../tenants/tenant.repository.ts';
import type { TenantAccessCache } from '../tenants/tenant.service.ts';
import { findPurgedObjectKeys } from './backup.repository.ts';
import type { BackupLocation } from './backup-format.ts';
import { pruneBackups, type RetentionSummary } from './backup-retention.ts';
import { readBackupStatus, type TenantBackupStatus } from './backup-status.ts';
import { type LocationVerification, verifyBackups } from './backup-verify.ts';
import { type ControlSnapshotResult, snapshotControlPlane } from './control-plane-backup.ts';
import { isRecoveryTarget, type RecoveryResult, recoverAll } from './disaster-recovery.ts';
import { JournalShipper, type ShipSummary } from './journal-shipper.ts';
import { type RestoreRequest, type RestoreResult, RestoreService } from './restore.service.ts';
import { type DrillResult, RestoreDrills } from './restore-drills.ts';
import { type SnapshotResult, SnapshotService } from './snapshot.service.ts';

/**
 * Backups of every tenant in two or more locations: the journal shipper, snapshots, point-in-time
 * restore, status and verification, over the same locations.
 */
export class BackupService {
  readonly locations: readonly BackupLocation[];
  readonly #shipper: JournalShipper;
  readonly #snapshots: SnapshotService;
  readonly #restores: RestoreService;
  readonly #drills: RestoreDrills;
  readonly #tenants: TenantRepository;
  readonly #withTenant: WithTenant;
  readonly #keys: TenantKeyService;
  readonly #clock: Clock;
  readonly #restoreWindowMs: number;
  readonly #accessCache: TenantAccessCache | undefined;
  readonly #database: Database;
  readonly #controlMigrations: readonly Migration[];

  constructor(deps: {
    database: Database;
    tenants: TenantRepository;
    withTenant: WithTenant;
    keys: TenantKeyService;
    locations: readonly BackupLocation[];
    migrations: readonly Migration[];
    clock: Clock;
    restoreWindowMs: number;
    /** The attachment object store (a restore copies the files into the new tenant). */
    objects: ObjectStore;
    /** Control-plane migrations (a control-plane snapshot records its version); default: the shipped list. */
    controlMigrations?: readonly Migration[];
    /** Where a failed restore drill is mailed (STRONGROOM_OPS_EMAIL); none: the caller logs it only. */
    alerts?: { mailer: Mailer; to: string } | undefined;
    /**
     * Cached principals: an in-place restore (and its undo) replaces the tenant's users and sessions
     * (sessions are not restored: everyone signs in again), so its cached principals must go.
     */
    accessCache?: TenantAccessCache | undefined;
  }) {
    this.#accessCache = deps.accessCache;
    this.locations = deps.locations;
    this.#database = deps.database;
    this.#controlMigrations = deps.controlMigrations ?? controlMigrations;
    this.#tenants = deps.tenants;
    this.#withTenant = deps.withTenant;
    this.#keys = deps.keys;
    this.#clock = deps.clock;
    this.#restoreWindowMs = deps.restoreWindowMs;
    this.#shipper = new JournalShipper(deps);
    this.#snapshots = new SnapshotService(deps);
    this.#restores = new RestoreService(deps);
    this.#drills = new RestoreDrills({ ...deps, restores: this.#restores });
  }

  /** Restore drills now: one tenant, or a random sample (see restore-drills.ts). */
  drill(options: { tenant?: string; sample?: number } = {}): Promise<DrillResult[]> {
    return this.#drills.run(options);
  }

  /** The newest drill results, newest first. */
  drills(limit?: number): Promise<DrillResult[]> {
    return this.#drills.list(limit);
  }

  /** Ships every tenant's journal to every location (once at a time across nodes). */
  ship(): Promise<ShipSummary> {
    return this.#shipper.shipAll();
  }

  shipTenant(tenantId: string): Promise<ShipSummary> {
    return this.#shipper.shipTenant(tenantId);
  }

  /** Snapshots every tenant, or only those due (`dueAfterMs` since their newest snapshot). */
  snapshotAll(options: { dueAfterMs?: number; onProgress?: (done: number, total: number) => void } = {}) {
    return this.#snapshots.snapshotAll(options);
  }

  snapshotTenant(tenantId: string): Promise<SnapshotResult> {
    return this.#snapshots.snapshotTenant(tenantId);
  }

  /**
   * Snapshots the control plane (tenants, wrapped keys, staff, …) into every location, sealed under
   * the master key: what disaster recovery starts from. Taken after each round of tenant snapshots.
   */
  snapshotControlPlane(): Promise<ControlSnapshotResult> {
    return snapshotControlPlane({
      database: this.#database,
      keys: this.#keys,
      locations: this.locations,
      controlMigrations: this.#controlMigrations,
      clock: this.#clock,
    });
  }

  /** Whether this database is empty, as a disaster recovery loads into (see disaster-recovery.ts). */
  isRecoveryTarget(): Promise<boolean> {
    return isRecoveryTarget(this.#database);
  }

  /**
   * Disaster recovery: the control plane and every tenant from one location onto this (empty)
   * database. See disaster-recovery.ts.
   */
  recoverAll(request: {
    from?: string;
    onProgress?: (done: number, total: number, label: string) => void;
  }): Promise<RecoveryResult> {
    return recoverAll(
      {
        database: this.#database,
        keys: this.#keys,
        tenants: this.#tenants,
        restores: this.#restores,
        snapshots: this.#snapshots,
        locations: this.locations,
        controlMigrations: this.#controlMigrations,
      },
      request,
    );
  }

  /**
   * Restores a tenant as of `at` into a new tenant, then snapshots the new tenant, so its own
   * backups start from a complete copy.
   */
  async restore(request: RestoreRequest): Promise<RestoreResult & { snapshot: SnapshotResult }> {
    let total = 0;
    const result = await this.#restores.restore({
      ...request,
      onProgress: (done, all, label) => {
        total = all;
        request.onProgress?.(done, all, label);
      },
    });
    request.onProgress?.(total, total, 'first snapshot of the new tenant');
    const snapshot = await this.#snapshots.snapshotTenant(result.tenant.id);
    return { ...result, snapshot };
  }

  /**
   * What a restore into a new tenant would refuse at once (bad or taken slug, unknown tenant or
   * location, a time outside the window): checked before a restore job is queued. The source tenant.
   */
  checkRestore(request: Omit<RestoreRequest, 'onProgress'>): Promise<Tenant> {
    return this.#restores.check(request);
  }

  /**
   * Restores a tenant in place (restore.service.ts), then snapshots it at once: until a snapshot
   * after the swap exists, instants after it cannot be restored (the journal's marker says why).
   */
  async restoreInPlace(
    request: Omit<RestoreRequest, 'intoSlug' | 'intoName'>,
  ): Promise<RestoreResult & { snapshot: SnapshotResult }> {
    const result = await this.#restores
      .restoreInPlace(request)
      .finally(() => this.#forgetPrincipals(request.tenant));
    const snapshot = await this.#snapshots.snapshotTenant(result.tenant.id);
    return { ...result, snapshot };
  }

  /** After a swap (or a failed one: clearing is harmless) nothing cached may outlive the old data. */
  async #forgetPrincipals(idOrSlug: string): Promise<void> {
    if (!this.#accessCache) return;
    const tenant = isUuid(idOrSlug)
      ? await this.#tenants.findById(idOrSlug)
      : await this.#tenants.findLiveBySlug(idOrSlug);
    if (tenant) await this.#accessCache.forgetTenant(tenant.id);
  }

  /** Makes an in-place restore final: drops the previous data it kept. */
  confirmInPlaceRestore(tenant: string): Promise<Tenant> {
    return this.#restores.confirmInPlace(tenant);
  }

  /** Swaps an in-place restore's kept data back in (then snapshots the tenant, as after the restore). */
  async undoInPlaceRestore(tenant: string): Promise<{ tenant: Tenant; snapshot: SnapshotResult }> {
    const restored = await this.#restores.undoInPlace(tenant).finally(() => this.#forgetPrincipals(tenant));
    return { tenant: restored, snapshot: await this.#snapshots.snapshotTenant(restored.id) };
  }

  /**
   * A tenant's owner or admin, signed in with a session, restores their own tenant as of `at` into a
   * new tenant (its users, with their passwords, come with it). Only their own tenant, ever.
   */
  async restoreOwn(
    principal: Extract<AccessPrincipal, { kind: 'user' }>,
    request: { at: Date; intoSlug: string; intoName?: string },
  ): Promise<RestoreResult & { snapshot: SnapshotResult }> {
    authorize(principal, 'tenant.restore', { tenantId: principal.tenantId, isProject: false });
    return this.restore({ ...request, tenant: principal.tenantId });
  }

  status(): Promise<TenantBackupStatus[]> {
    return readBackupStatus({
      tenants: this.#tenants,
      withTenant: this.#withTenant,
      locations: this.locations,
      clock: this.#clock,
    });
  }

  /** Deletes snapshots and segments no restore inside the window can need (see backup-retention.ts). */
  prune(): Promise<RetentionSummary[]> {
    return pruneBackups({
      locations: this.locations,
      clock: this.#clock,
      restoreWindowMs: this.#restoreWindowMs,
      findPurged: async (tenantId, objectKeys) => {
        const tenant = await this.#tenants.findById(tenantId);
        if (!tenant || tenant.status === 'deleted') return undefined;
        return this.#withTenant(tenantId, (scope) => findPurgedObjectKeys(scope, objectKeys), {
          readOnly: true,
        });
      },
    });
  }

  verify(): Promise<LocationVerification[]> {
    return verifyBackups({ locations: this.locations, keys: this.#keys });
  }
}
