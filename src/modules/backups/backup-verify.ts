import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { createZstdDecompress } from 'node:zlib';
import { cryptoErrors } from '../../crypto/crypto.errors.ts';
import { createDecryptStream } from '../../crypto/stream-aead.ts';
import { isAppError } from '../../platform/errors.ts';
import { objectAad } from '../attachments/attachment.service.ts';
import { keyErrors } from '../keys/keys.errors.ts';
import type { DataKey, TenantKeyService } from '../keys/tenant-keys.service.ts';
import { backupErrors } from './backup.errors.ts';
import {
  type BackupLocation,
  backupKeys,
  manifestKindOf,
  readManifest,
  segmentAad,
  snapshotAad,
  type TenantManifest,
} from './backup-format.ts';
import { listControlSnapshots, openControlSnapshot } from './control-plane-backup.ts';

export interface LocationVerification {
  location: string;
  tenants: number;
  filesChecked: number;
  /** Tenants whose data key is destroyed (deleted tenants): their files can no longer be read. */
  shreddedTenants: string[];
  problems: Array<{ key: string; problem: string }>;
}

/**
 * Checks every file of every location: each manifest parses and names a file of its size and
 * SHA-256; segments are numbered without a gap; and, where the tenant's key still exists, each file
 * decrypts (and segments and snapshots decompress) whole, which also proves no byte was changed, and
 * holds the number of entries or rows its manifest says. Attachment copies are opened with the
 * attachment's own associated data (tenant and object key) and their plaintext is thrown away. Files of a tenant whose key is gone are reported as shredded.
 */
export async function verifyBackups(deps: {
  locations: readonly BackupLocation[];
  keys: TenantKeyService;
}): Promise<LocationVerification[]> {
  const results: LocationVerification[] = [];
  for (const location of deps.locations) {
    const result: LocationVerification = {
      location: location.name,
      tenants: 0,
      filesChecked: 0,
      shreddedTenants: [],
      problems: [],
    };
    try {
      const byTenant = new Map<string, string[]>();
      for await (const info of location.store.list('tenants/')) {
        const tenantId = info.key.split('/')[1]!;
        byTenant.set(tenantId, [...(byTenant.get(tenantId) ?? []), info.key]);
      }
      for (const [tenantId, keys] of byTenant) {
        result.tenants++;
        await verifyTenant(location, tenantId, new Set(keys), deps.keys, result);
      }
      await verifyControlSnapshots(location, deps.keys, result);
    } catch (error) {
      result.problems.push({ key: '', problem: `location unreadable: ${(error as Error).message}` });
    }
    results.push(result);
  }
  return results;
}

async function verifyTenant(
  location: BackupLocation,
  tenantId: string,
  keys: Set<string>,
  tenantKeys: TenantKeyService,
  result: LocationVerification,
): Promise<void> {
  const keyCache = new Map<number, DataKey | 'shredded'>();
  const dataKey = async (version: number) => {
    if (!keyCache.has(version)) {
      try {
        keyCache.set(version, await tenantKeys.getDataKey(tenantId, version));
      } catch (error) {
        if (!isAppError(error) || error.code !== keyErrors.dataKeyMissing.code) throw error;
        keyCache.set(version, 'shredded');
        if (!result.shreddedTenants.includes(tenantId)) result.shreddedTenants.push(tenantId);
      }
    }
    return keyCache.get(version)!;
  };
  const segmentNumbers: number[] = [];
  for (const manifestKey of [...keys].filter((k) => k.endsWith('.json')).sort()) {
    const manifest = await readManifest<TenantManifest>(
      location.store,
      manifestKey,
      manifestKindOf(tenantId, manifestKey),
    ).catch(() => undefined);
    if (!manifest || manifest.tenantId !== tenantId) {
      result.problems.push({ key: manifestKey, problem: 'not a valid manifest for this tenant' });
      continue;
    }
    const fileKey =
      manifest.kind === 'segment'
        ? backupKeys.segment(tenantId, manifest.segmentNo)
        : manifest.kind === 'snapshot'
          ? backupKeys.snapshot(tenantId, manifest.snapshotId)
          : backupKeys.object(tenantId, manifest.objectKey);
    // A manifest names the file next to it, and no other.
    if (`${fileKey}.json` !== manifestKey && fileKey.replace(/\.(seg|snap)$/, '.json') !== manifestKey) {
      result.problems.push({ key: manifestKey, problem: 'its manifest names another file' });
      continue;
    }
    if (manifest.kind === 'segment') segmentNumbers.push(manifest.segmentNo);
    if (!keys.has(fileKey)) {
      result.problems.push({ key: fileKey, problem: 'missing: its manifest exists' });
      continue;
    }
    result.filesChecked++;
    const key = await dataKey(manifest.keyVersion);
    const problem = await checkFile(location, fileKey, manifest, key === 'shredded' ? undefined : key);
    if (problem) result.problems.push({ key: fileKey, problem });
  }
  segmentNumbers.sort((a, b) => a - b);
  for (let i = 1; i < segmentNumbers.length; i++) {
    const previous = segmentNumbers[i - 1]!;
    if (segmentNumbers[i] !== previous + 1) {
      result.problems.push({
        key: backupKeys.segmentsPrefix(tenantId),
        problem: `journal segments ${previous + 1} to ${segmentNumbers[i]! - 1} are missing`,
      });
    }
  }
}

/**
 * Control-plane snapshots: each manifest parses, and its file has its checksum and opens with the
 * master key (which also checks every row count).
 */
async function verifyControlSnapshots(
  location: BackupLocation,
  keys: TenantKeyService,
  result: LocationVerification,
): Promise<void> {
  const { manifests, unreadable } = await listControlSnapshots(location);
  for (const key of unreadable) result.problems.push({ key, problem: 'not a valid control-plane manifest' });
  for (const manifest of manifests) {
    result.filesChecked++;
    try {
      await openControlSnapshot(keys, location, manifest);
    } catch (error) {
      if (!isAppError(error)) throw error;
      result.problems.push({
        key: backupKeys.controlSnapshot(manifest.snapshotId),
        problem: error.code === backupErrors.corrupt.code ? String(error.details?.reason) : error.message,
      });
    }
  }
}

/** Hashes the file as stored and, with the key, decrypts and counts its lines; a problem or undefined. */
async function checkFile(
  location: BackupLocation,
  fileKey: string,
  manifest: TenantManifest,
  key: DataKey | undefined,
): Promise<string | undefined> {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  let lines = 0;
  const aad =
    manifest.kind === 'segment'
      ? segmentAad(manifest.tenantId, manifest.segmentNo)
      : manifest.kind === 'snapshot'
        ? snapshotAad(manifest.tenantId, manifest.snapshotId)
        : objectAad(manifest.tenantId, manifest.objectKey);
  try {
    const stored = await location.store.get(fileKey);
    const hashing = async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        hash.update(chunk);
        sizeBytes += chunk.length;
        yield chunk;
      }
    };
    const counting = async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) for (const byte of chunk) if (byte === 0x0a) lines++;
    };
    if (key && manifest.kind === 'object') {
      await pipeline(stored, hashing, createDecryptStream(key.bytes, { aad }), async (source) => {
        for await (const _ of source);
      });
    } else if (key) {
      await pipeline(
        stored,
        hashing,
        createDecryptStream(key.bytes, { aad }),
        createZstdDecompress(),
        counting,
      );
    } else {
      await pipeline(stored, hashing, async (source: AsyncIterable<Buffer>) => {
        for await (const _ of source);
      });
    }
  } catch (error) {
    if (isAppError(error) && error.code === cryptoErrors.decryptionFailed.code)
      return 'decryption failed: the file was altered or truncated';
    return `unreadable: ${(error as Error).message}`;
  }
  if (sizeBytes !== manifest.sealedBytes || hash.digest('hex') !== manifest.sealedSha256) {
    return 'checksum does not match its manifest';
  }
  if (!key || manifest.kind === 'object') return undefined;
  const expected =
    manifest.kind === 'segment' ? manifest.entryCount : manifest.tables.reduce((sum, t) => sum + t.rows, 0);
  return lines === expected ? undefined : `holds ${lines} lines, its manifest says ${expected}`;
}
