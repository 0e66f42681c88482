import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { encodeAad } from '../../crypto/aead.ts';
import type { ObjectStore } from '../../ports/object-store.port.ts';

/**
 * What a backup location holds, per tenant (every file sealed with the tenant's data key):
 *
 *   tenants/<tenantId>/segments/<segmentNo, 12 digits>.seg    journal entries, JSON lines
 *   tenants/<tenantId>/segments/<segmentNo>.json              its manifest (plaintext, no tenant data)
 *   tenants/<tenantId>/snapshots/<snapshotId>.snap            every row of the tenant, JSON lines
 *   tenants/<tenantId>/snapshots/<snapshotId>.json            its manifest
 *   tenants/<tenantId>/objects/<objectKey>                    an attachment object, byte for byte
 *   tenants/<tenantId>/objects/<objectKey>.json               its manifest
 *
 * Sealed = zstd-compressed, then encrypted with the streaming AEAD (crypto/stream-aead.ts) under the
 * tenant's data key, with the tenant id, the kind and the file's number or id bound in as associated
 * data: a file copied to another tenant or renamed to another segment fails to decrypt. A manifest is
 * written after its file, so a manifest names a complete file; it carries the SHA-256 of the sealed
 * bytes, so corruption is found without the key (`backup verify`), and the AEAD finds it with it.
 *
 * Attachment objects are already sealed by the attachment service (tenant key, tenant id and object
 * key as associated data): they are copied as they are, never opened, so a copy is exactly as
 * readable as the original and no more. Their manifest is their checksum and the proof the copy is
 * whole: a location holds an object once, and only once, its manifest exists.
 */
export const backupFormat = 'strongroom-backup/v1';
export const backupCompression = 'zstd';

export interface BackupLocation {
  readonly name: string;
  readonly store: ObjectStore;
}

export interface SegmentManifest {
  format: typeof backupFormat;
  kind: 'segment';
  tenantId: string;
  segmentNo: number;
  firstSeq: string;
  lastSeq: string;
  entryCount: number;
  /** Earliest and latest transaction start among the entries. */
  firstAt: string;
  lastAt: string;
  schemaVersion: string;
  keyVersion: number;
  compression: typeof backupCompression;
  sealedBytes: number;
  sealedSha256: string;
  createdAt: string;
}

export interface SnapshotManifest {
  format: typeof backupFormat;
  kind: 'snapshot';
  tenantId: string;
  snapshotId: string;
  /** When the REPEATABLE READ snapshot was fixed (or just after): it holds what had committed by then. */
  takenAt: string;
  /**
   * `txid_current_snapshot()` of that transaction (`xmin:xmax:xip,…`): a restore replays exactly the
   * journal entries of transactions it does not show.
   */
  txSnapshot: string;
  /** Every segment numbered at most this holds only entries the snapshot already shows. */
  segmentPosition: number;
  schemaVersion: string;
  keyVersion: number;
  compression: typeof backupCompression;
  /** Tables in load order (parents before children) with their row counts. */
  tables: Array<{ name: string; rows: number }>;
  sealedBytes: number;
  sealedSha256: string;
  createdAt: string;
}

export interface ObjectManifest {
  format: typeof backupFormat;
  kind: 'object';
  tenantId: string;
  /** The key relative to the tenant's prefix in the attachment object store (`attachments/<id>`). */
  objectKey: string;
  /** Which version of the tenant's data key sealed it (the object is copied sealed). */
  keyVersion: number;
  sealedBytes: number;
  sealedSha256: string;
  createdAt: string;
}

/**
 * A snapshot of the control plane (tenants, their wrapped data keys, staff, credentials index,
 * limits, …): what disaster recovery rebuilds first. Sealed with a random file key that is itself
 * wrapped by the master key (the platform key), so only the master key opens it.
 */
export interface ControlSnapshotManifest {
  format: typeof backupFormat;
  kind: 'control';
  snapshotId: string;
  takenAt: string;
  /** The newest control-plane migration applied: a recovery needs the same. */
  schemaVersion: string;
  compression: typeof backupCompression;
  tables: Array<{ name: string; rows: number }>;
  /** The file key, wrapped by the master key (`kekId` names which one; not secret). */
  wrappedKey: { kekId: string; ciphertext: string };
  sealedBytes: number;
  sealedSha256: string;
  createdAt: string;
}

/** What a tenant's folder of a location holds manifests of. */
export type TenantManifest = SegmentManifest | SnapshotManifest | ObjectManifest;
export type AnyManifest = TenantManifest | ControlSnapshotManifest;

/** One line of a segment. */
export interface JournalEntry {
  seq: string;
  txid: string;
  at: string;
  table: string;
  op: 'insert' | 'update' | 'delete';
  key: Record<string, unknown>;
  row: Record<string, unknown> | null;
}

const tenantPrefix = (tenantId: string) => `tenants/${tenantId}/`;

export const backupKeys = {
  segmentsPrefix: (tenantId: string) => `${tenantPrefix(tenantId)}segments/`,
  snapshotsPrefix: (tenantId: string) => `${tenantPrefix(tenantId)}snapshots/`,
  segment: (tenantId: string, segmentNo: number) =>
    `${tenantPrefix(tenantId)}segments/${String(segmentNo).padStart(12, '0')}.seg`,
  segmentManifest: (tenantId: string, segmentNo: number) =>
    `${tenantPrefix(tenantId)}segments/${String(segmentNo).padStart(12, '0')}.json`,
  snapshot: (tenantId: string, snapshotId: string) => `${tenantPrefix(tenantId)}snapshots/${snapshotId}.snap`,
  snapshotManifest: (tenantId: string, snapshotId: string) =>
    `${tenantPrefix(tenantId)}snapshots/${snapshotId}.json`,
  controlSnapshotsPrefix: 'control/snapshots/',
  controlSnapshot: (snapshotId: string) => `control/snapshots/${snapshotId}.snap`,
  controlSnapshotManifest: (snapshotId: string) => `control/snapshots/${snapshotId}.json`,
  objectsPrefix: (tenantId: string) => `${tenantPrefix(tenantId)}objects/`,
  object: (tenantId: string, objectKey: string) => `${tenantPrefix(tenantId)}objects/${objectKey}`,
  objectManifest: (tenantId: string, objectKey: string) =>
    `${tenantPrefix(tenantId)}objects/${objectKey}.json`,
};

/** Which kind of manifest a key names, from where it lives. */
export function manifestKindOf(tenantId: string, manifestKey: string): TenantManifest['kind'] {
  if (manifestKey.startsWith(backupKeys.segmentsPrefix(tenantId))) return 'segment';
  if (manifestKey.startsWith(backupKeys.objectsPrefix(tenantId))) return 'object';
  return 'snapshot';
}

export function segmentAad(tenantId: string, segmentNo: number): Buffer {
  return encodeAad(['strongroom/backup/segment/v1', tenantId, String(segmentNo)]);
}

export function snapshotAad(tenantId: string, snapshotId: string): Buffer {
  return encodeAad(['strongroom/backup/snapshot/v1', tenantId, snapshotId]);
}

/** Binds a control-plane snapshot's contents, and separately its wrapped file key, to its id. */
export function controlSnapshotAad(snapshotId: string): Buffer {
  return encodeAad(['strongroom/backup/control/v1', snapshotId]);
}

export function controlFileKeyAad(snapshotId: string): Buffer {
  return encodeAad(['strongroom/backup/control-key/v1', snapshotId]);
}

/** A pass-through that hashes and counts what flows through it. */
export function createDigestStream(): Transform & { digest(): { sha256: string; sizeBytes: number } } {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      sizeBytes += chunk.length;
      callback(null, chunk);
    },
  });
  return Object.assign(stream, { digest: () => ({ sha256: hash.digest('hex'), sizeBytes }) });
}

export async function readAll(stream: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(Buffer.from(part));
  return Buffer.concat(parts);
}

/** Reads and parses a manifest; undefined when it is not valid JSON of the expected kind. */
export async function readManifest<T extends AnyManifest>(
  store: ObjectStore,
  key: string,
  kind: T['kind'],
): Promise<T | undefined> {
  const text = (await readAll(await store.get(key))).toString('utf8');
  try {
    const parsed = JSON.parse(text) as T;
    return parsed.format === backupFormat && parsed.kind === kind ? parsed : undefined;
  } catch {
    return undefined;
  }
}
