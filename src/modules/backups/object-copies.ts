import type { Clock } from '../../platform/clock.ts';
import { isAppError } from '../../platform/errors.ts';
import { type ObjectStore, objectStoreErrors, scopeObjectStore } from '../../ports/object-store.port.ts';
import { type BackupLocation, backupFormat, backupKeys, type ObjectManifest } from './backup-format.ts';

/** An attachment object a tenant's rows name: its key in the tenant's prefix and the key version that sealed it. */
export interface ObjectRef {
  objectKey: string;
  keyVersion: number;
}

export interface ObjectCopySummary {
  copied: number;
  bytesCopied: number;
  /** Objects the rows name that the attachment object store does not have (reported, not fatal). */
  missing: string[];
}

export function emptyObjectCopySummary(): ObjectCopySummary {
  return { copied: 0, bytesCopied: 0, missing: [] };
}

/**
 * The object keys a location holds whole (those with a manifest), listed once: what a snapshot
 * compares the tenant's live objects with, so nothing already there is copied again.
 */
export async function listHeldObjects(location: BackupLocation, tenantId: string): Promise<Set<string>> {
  const prefix = backupKeys.objectsPrefix(tenantId);
  const held = new Set<string>();
  for await (const info of location.store.list(prefix)) {
    if (info.key.endsWith('.json')) held.add(info.key.slice(prefix.length, -'.json'.length));
  }
  return held;
}

/**
 * Copies to `location` every object in `refs` it does not hold yet, byte for byte: the object is
 * sealed under the tenant's key already and is never opened here. The copy is written first and its
 * manifest (size and SHA-256 of the bytes as stored) after it, so a manifest always names a whole
 * copy. `held` is what the location is known to hold (listed by the caller); without it, each
 * object's manifest is looked up (cheap for the few objects of one journal segment).
 *
 * A write to the location that fails throws: the caller treats the location as unreachable. An
 * object the attachment store no longer has is reported in `missing` and skipped, so one lost file
 * cannot hold up every later backup of the tenant.
 */
export async function copyObjectsToLocation(
  deps: { objects: ObjectStore; clock: Clock },
  location: BackupLocation,
  tenantId: string,
  refs: readonly ObjectRef[],
  summary: ObjectCopySummary,
  held?: ReadonlySet<string>,
): Promise<void> {
  const source = scopeObjectStore(deps.objects, `tenants/${tenantId}/`);
  for (const ref of refs) {
    const manifestKey = backupKeys.objectManifest(tenantId, ref.objectKey);
    const isHeld = held ? held.has(ref.objectKey) : (await location.store.head(manifestKey)) !== undefined;
    if (isHeld) continue;
    let body: Awaited<ReturnType<ObjectStore['get']>>;
    try {
      body = await source.get(ref.objectKey);
    } catch (error) {
      if (isAppError(error) && error.code === objectStoreErrors.notFound.code) {
        if (!summary.missing.includes(ref.objectKey)) summary.missing.push(ref.objectKey);
        continue;
      }
      throw error;
    }
    // The store hashes the bytes as it writes them: the manifest's checksum is of the copy itself.
    const stored = await location.store.put(backupKeys.object(tenantId, ref.objectKey), body, {
      contentType: 'application/octet-stream',
    });
    const manifest: ObjectManifest = {
      format: backupFormat,
      kind: 'object',
      tenantId,
      objectKey: ref.objectKey,
      keyVersion: ref.keyVersion,
      sealedBytes: stored.sizeBytes,
      sealedSha256: stored.sha256,
      createdAt: deps.clock.now().toISOString(),
    };
    await location.store.put(manifestKey, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), {
      contentType: 'application/json',
    });
    summary.copied++;
    summary.bytesCopied += stored.sizeBytes;
  }
}

/** The objects that journal entries add: each inserted `attachment_versions` row names one. */
export function objectRefsOfEntries(
  entries: ReadonlyArray<{ table: string; op: string; row: Record<string, unknown> | null }>,
): ObjectRef[] {
  return entries
    .filter((e) => e.table === 'attachment_versions' && e.op === 'insert' && e.row)
    .map((e) => ({ objectKey: String(e.row!.object_key), keyVersion: Number(e.row!.key_version) }));
}
