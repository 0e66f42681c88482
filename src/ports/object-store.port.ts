import type { Readable } from 'node:stream';
import { defineError } from '../platform/errors.ts';

/**
 * Where bytes live: attachments, backup snapshots, journal segments, exports, audit checkpoints.
 * Implementations: a local folder (default) and any S3-compatible server. Keys are server-generated
 * relative paths; an implementation rejects any key that `assertObjectKey` rejects, so no key can
 * climb out of the store's root or a tenant's prefix.
 */
export interface ObjectStore {
  readonly kind: 'fs' | 's3';
  /** Resolves only once the bytes are durable (fsync + rename, or the server's confirmed PUT). */
  put(key: string, body: Readable | Uint8Array, options?: PutObjectOptions): Promise<StoredObject>;
  /** Streams the object (or the inclusive byte range); rejects with `object_not_found`. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with `prefix` (a whole-segment prefix ending in `/`, or ''). */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * Removes what writes cut off by a crash left behind that no key names (the folder store's
   * temp files), when older than `olderThan`; returns how many. Absent on S3, where a bucket
   * lifecycle rule aborts incomplete multipart uploads (docs/ARCHITECTURE.md, "Objects and cache").
   */
  sweepIncomplete?(olderThan: Date): Promise<number>;
  /** Cheap reachability check for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface PutObjectOptions {
  contentType?: string;
  /**
   * false: the store does not hash what it stores (`sha256` is then ''). For bodies that carry their
   * own authentication, such as the streaming AEAD's chunks, where a second hash over every byte
   * would only cost time. Default true.
   */
  checksum?: boolean;
}

export interface StoredObject {
  key: string;
  sizeBytes: number;
  /** SHA-256 of the bytes as stored, hex; '' if put with `checksum: false`. */
  sha256: string;
}

export interface ObjectInfo {
  key: string;
  sizeBytes: number;
}

/** Inclusive byte offsets, as in HTTP `Range: bytes=start-end`; `end` omitted means to the end. */
export interface ByteRange {
  start: number;
  end?: number;
}

export const objectStoreErrors = {
  invalidKey: defineError(
    'invalid_object_key',
    'invalid',
    'An object key is malformed or would leave its prefix.',
    (reason: string) => ({ message: `invalid object key: ${reason}` }),
  ),
  notFound: defineError('object_not_found', 'not_found', 'The object does not exist.'),
  unavailable: defineError(
    'object_store_unavailable',
    'unavailable',
    'The object store cannot be reached.',
    (cause?: unknown) => ({ cause }),
  ),
};

const segmentPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const maxKeyLength = 1024;

/**
 * Keys are `/`-separated segments of `[A-Za-z0-9._-]`, none of them `.` or `..`, no leading or
 * trailing slash. This is the whole defence against path traversal in the folder store and against
 * cross-tenant keys in every store, so it is strict on purpose.
 */
export function assertObjectKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw objectStoreErrors.invalidKey('empty');
  if (key.length > maxKeyLength) throw objectStoreErrors.invalidKey(`longer than ${maxKeyLength} characters`);
  for (const segment of key.split('/')) {
    if (!segmentPattern.test(segment) || segment === '.' || segment === '..') {
      throw objectStoreErrors.invalidKey('segments must match [A-Za-z0-9][A-Za-z0-9._-]*');
    }
  }
}

/** A listing prefix is '' or a valid key followed by '/'. */
export function assertObjectPrefix(prefix: string): void {
  if (prefix === '') return;
  if (!prefix.endsWith('/')) throw objectStoreErrors.invalidKey('a prefix must end with /');
  assertObjectKey(prefix.slice(0, -1));
}

/**
 * A view of a store confined to `prefix` (e.g. `tenants/<id>/`). Callers pass keys relative to the
 * prefix; listing returns relative keys. Because every relative key is validated on its own, no key
 * handed to the view can name an object outside it.
 */
export function scopeObjectStore(store: ObjectStore, prefix: string): ObjectStore {
  assertObjectPrefix(prefix);
  if (prefix === '') throw objectStoreErrors.invalidKey('a scope needs a non-empty prefix');
  const full = (key: string): string => {
    assertObjectKey(key);
    return prefix + key;
  };
  return {
    kind: store.kind,
    put: async (key, body, options) => {
      const stored = await store.put(full(key), body, options);
      return { ...stored, key };
    },
    // Every method is async, so a rejected key always arrives as a rejected promise, never a throw.
    get: async (key, range) => store.get(full(key), range),
    head: async (key) => {
      const info = await store.head(full(key));
      return info && { ...info, key };
    },
    delete: async (key) => store.delete(full(key)),
    list: (relativePrefix) =>
      (async function* () {
        assertObjectPrefix(relativePrefix);
        for await (const info of store.list(prefix + relativePrefix)) {
          yield { ...info, key: info.key.slice(prefix.length) };
        }
      })(),
    ping: () => store.ping(),
    // The view owns nothing: closing the underlying store is its owner's job.
    close: async () => undefined,
  };
}
