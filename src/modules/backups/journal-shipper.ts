import { zstdCompressSync } from 'node:zlib';
import { encryptBuffer } from '../../crypto/stream-aead.ts';
import type { Database } from '../../db/database.ts';
import { newLeaseHolder, withLease } from '../../db/leases.ts';
import { tenantScopeErrors, type WithTenant } from '../../db/with-tenant.ts';
import type { Clock } from '../../platform/clock.ts';
import { isAppError } from '../../platform/errors.ts';
import type { ObjectStore } from '../../ports/object-store.port.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import type { TenantRepository } from '../tenants/tenant.repository.ts';
import { backupErrors } from './backup.errors.ts';
import {
  listUnprunedSegments,
  markSegmentShipped,
  pruneSegment,
  readSegmentEntries,
  type SegmentRow,
  sealNextSegment,
} from './backup.repository.ts';
import {
  type BackupLocation,
  backupCompression,
  backupFormat,
  backupKeys,
  type SegmentManifest,
  segmentAad,
} from './backup-format.ts';
import { copyObjectsToLocation, emptyObjectCopySummary, objectRefsOfEntries } from './object-copies.ts';

export interface ShipSummary {
  tenants: number;
  segmentsSealed: number;
  /** Segment copies written (a segment written to two locations counts twice). */
  segmentsShipped: number;
  segmentsPruned: number;
  /** Attachment objects copied to locations (one per location), and their bytes. */
  objectsCopied: number;
  objectBytesCopied: number;
  /** Objects new rows name that the attachment object store does not have: they cannot be backed up. */
  objectsMissing: Array<{ tenantId: string; objectKey: string }>;
  /** Locations (per tenant) that could not be written this round; their backlog ships next time. */
  failures: Array<{ tenantId: string; location: string; message: string }>;
}

/** At most this many journal entries per segment: bounds the memory one segment takes to seal. */
const maxEntriesPerSegment = 5_000;
/** At most this many new segments per tenant per round, so one busy tenant cannot starve the rest. */
const maxSegmentsPerRound = 20;
const leaseName = 'backup-ship';
const leaseTtlMs = 30_000;

/**
 * Drains each tenant's `_journal` into sealed segments written to every backup location. Before a
 * segment is written to a location, the attachment objects its entries add are copied there (as they
 * are, sealed), so a location holding segment N holds every file the journal up to N names. A
 * segment's entries leave the journal only once every location holds it; a location that cannot be written is
 * skipped (the others keep receiving) and catches up, in order, when it is back.
 */
export class JournalShipper {
  readonly #database: Database;
  readonly #tenants: TenantRepository;
  readonly #withTenant: WithTenant;
  readonly #keys: TenantKeyService;
  readonly #locations: readonly BackupLocation[];
  readonly #clock: Clock;
  readonly #objects: ObjectStore;

  constructor(deps: {
    database: Database;
    tenants: TenantRepository;
    withTenant: WithTenant;
    keys: TenantKeyService;
    locations: readonly BackupLocation[];
    clock: Clock;
    /** The attachment object store: files new rows name are copied from it to the locations. */
    objects: ObjectStore;
  }) {
    this.#database = deps.database;
    this.#tenants = deps.tenants;
    this.#withTenant = deps.withTenant;
    this.#keys = deps.keys;
    this.#locations = deps.locations;
    this.#clock = deps.clock;
    this.#objects = deps.objects;
  }

  /** Ships every live tenant, under a lease: scheduled on every node, it runs once at a time. */
  async shipAll(): Promise<ShipSummary> {
    const holder = newLeaseHolder();
    const outcome = await withLease(
      this.#database.control,
      leaseName,
      holder,
      leaseTtlMs,
      async (_lease, isLost) => {
        const summary = emptyShipSummary(0);
        for (const tenantId of await this.#tenants.listLiveIds()) {
          if (isLost()) break;
          try {
            await this.#shipTenant(tenantId, summary);
          } catch (error) {
            // Paused for an in-place swap: its journal (carried to the new schema) ships next round.
            if (isAppError(error) && error.code === tenantScopeErrors.restoring.code) continue;
            throw error;
          }
          summary.tenants++;
        }
        return summary;
      },
    );
    if ('conflict' in outcome) throw backupErrors.inProgress('journal shipping', outcome.conflict.holder);
    return outcome.value;
  }

  /** Ships one tenant now (tests, and a restore's final catch-up). */
  async shipTenant(tenantId: string): Promise<ShipSummary> {
    const summary = emptyShipSummary(1);
    await this.#shipTenant(tenantId, summary);
    return summary;
  }

  async #shipTenant(tenantId: string, summary: ShipSummary): Promise<void> {
    for (let i = 0; i < maxSegmentsPerRound; i++) {
      const sealed = await this.#withTenant(tenantId, (scope) =>
        sealNextSegment(scope, maxEntriesPerSegment),
      );
      if (!sealed) break;
      summary.segmentsSealed++;
    }
    const pending = await this.#withTenant(tenantId, (scope) => listUnprunedSegments(scope), {
      readOnly: true,
    });
    if (pending.length === 0) return;
    // Fetched outside any tenant transaction (PGlite has one connection).
    const key = await this.#keys.getDataKey(tenantId);
    const failed = new Set<string>();
    for (const segment of pending) {
      const missing = this.#locations.filter(
        (l) => !segment.shippedTo.includes(l.name) && !failed.has(l.name),
      );
      if (missing.length > 0) {
        const entries = await this.#withTenant(
          tenantId,
          (scope) => readSegmentEntries(scope, segment.segmentNo),
          {
            readOnly: true,
          },
        );
        const plaintext = Buffer.from(entries.map((e) => `${JSON.stringify(e)}\n`).join(''), 'utf8');
        const sealedBytes = encryptBuffer(key.bytes, zstdCompressSync(plaintext), {
          aad: segmentAad(tenantId, segment.segmentNo),
        });
        const refs = objectRefsOfEntries(entries);
        for (const location of missing) {
          try {
            const copies = emptyObjectCopySummary();
            await copyObjectsToLocation(
              { objects: this.#objects, clock: this.#clock },
              location,
              tenantId,
              refs,
              copies,
            );
            summary.objectsCopied += copies.copied;
            summary.objectBytesCopied += copies.bytesCopied;
            for (const objectKey of copies.missing)
              if (!summary.objectsMissing.some((m) => m.objectKey === objectKey))
                summary.objectsMissing.push({ tenantId, objectKey });
            await this.#writeSegment(location, tenantId, segment, key.version, sealedBytes);
          } catch (error) {
            // Later segments wait too, so each location receives its segments in order.
            failed.add(location.name);
            summary.failures.push({ tenantId, location: location.name, message: (error as Error).message });
            continue;
          }
          await this.#withTenant(tenantId, (scope) =>
            markSegmentShipped(scope, segment.segmentNo, location.name),
          );
          segment.shippedTo.push(location.name);
          summary.segmentsShipped++;
        }
      }
      if (this.#locations.every((l) => segment.shippedTo.includes(l.name))) {
        await this.#withTenant(tenantId, (scope) => pruneSegment(scope, segment.segmentNo));
        summary.segmentsPruned++;
      }
    }
  }

  async #writeSegment(
    location: BackupLocation,
    tenantId: string,
    segment: SegmentRow,
    keyVersion: number,
    sealedBytes: Buffer,
  ): Promise<void> {
    const stored = await location.store.put(backupKeys.segment(tenantId, segment.segmentNo), sealedBytes);
    const manifest: SegmentManifest = {
      format: backupFormat,
      kind: 'segment',
      tenantId,
      segmentNo: segment.segmentNo,
      firstSeq: segment.firstSeq,
      lastSeq: segment.lastSeq,
      entryCount: segment.entryCount,
      firstAt: segment.firstAt.toISOString(),
      lastAt: segment.lastAt.toISOString(),
      schemaVersion: segment.schemaVersion,
      keyVersion,
      compression: backupCompression,
      sealedBytes: stored.sizeBytes,
      sealedSha256: stored.sha256,
      createdAt: this.#clock.now().toISOString(),
    };
    await location.store.put(
      backupKeys.segmentManifest(tenantId, segment.segmentNo),
      Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`),
      { contentType: 'application/json' },
    );
  }
}

function emptyShipSummary(tenants: number): ShipSummary {
  return {
    tenants,
    segmentsSealed: 0,
    segmentsShipped: 0,
    segmentsPruned: 0,
    objectsCopied: 0,
    objectBytesCopied: 0,
    objectsMissing: [],
    failures: [],
  };
}
