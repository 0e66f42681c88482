import { createHash, type Hash, randomUUID } from 'node:crypto';
import { constants, createWriteStream, type Dirent, mkdirSync } from 'node:fs';
import { access, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  assertObjectKey,
  assertObjectPrefix,
  type ByteRange,
  type ObjectInfo,
  type ObjectStore,
  objectStoreErrors,
  type PutObjectOptions,
  type StoredObject,
} from '../../ports/object-store.port.ts';
import { assertByteRange } from './byte-range.ts';

export interface FsObjectStoreOptions {
  rootDir: string;
}

/**
 * Objects as files under one folder, key segments as subfolders. A folder cannot also be a file, so
 * unlike S3 this store cannot hold both `a` and `a/b`; keys are server-generated and never do.
 */
export class FsObjectStore implements ObjectStore {
  readonly kind = 'fs';
  readonly #root: string;
  /** Writes land here first; `.tmp` can never be a key segment, so no key can name or list it. */
  readonly #tmpDir: string;

  constructor(options: FsObjectStoreOptions) {
    this.#root = resolve(options.rootDir);
    this.#tmpDir = join(this.#root, '.tmp');
    // Owner-only: objects are ciphertext, but their names and sizes still say something about tenants.
    mkdirSync(this.#tmpDir, { recursive: true, mode: 0o700 });
  }

  /**
   * Streams into a temp file (hashing as it goes, unless told not to), fsyncs it, renames it into
   * place and fsyncs the folders that changed, so a crash leaves either the old object or the new
   * one, never a torn one.
   */
  async put(key: string, body: Readable | Uint8Array, options?: PutObjectOptions): Promise<StoredObject> {
    const path = this.#pathOf(key);
    const tmpPath = join(this.#tmpDir, randomUUID());
    const hash = options?.checksum === false ? undefined : createHash('sha256');
    // `flush` fsyncs before closing, and the pipeline settles only after the close.
    const file = createWriteStream(tmpPath, { flags: 'wx', mode: 0o600, flush: true });
    const source = body instanceof Uint8Array ? Readable.from([body]) : body;
    try {
      // Piped through a synchronous Transform, never an async iterator: iterating a byte stream
      // joins whatever it has buffered into a fresh Buffer, a copy of (nearly) every byte.
      await (hash ? pipeline(source, hashing(hash), file) : pipeline(source, file));
      await moveIntoPlace(tmpPath, path);
    } catch (error) {
      // A failed pipeline settles as soon as it fails, possibly before the file was even opened:
      // wait until it is closed, or the remove below could run before the open creates it.
      // (`events.once` would reject on the stream's own copy of the error; only the close matters.)
      if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
      await rm(tmpPath, { force: true });
      throw error;
    }
    return { key, sizeBytes: file.bytesWritten, sha256: hash ? hash.digest('hex') : '' };
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    if (range) assertByteRange(range);
    const path = this.#pathOf(key);
    const file = await open(path, 'r').catch((error: unknown) => {
      throw isMissing(error) ? objectStoreErrors.notFound() : error;
    });
    if (!(await file.stat()).isFile()) {
      await file.close();
      throw objectStoreErrors.notFound();
    }
    // createReadStream's `end` is inclusive, like ByteRange; it closes the file when done or destroyed.
    // Reads of 256 KiB rather than the default 64 KiB: a quarter of the syscalls and stream steps.
    return file.createReadStream({ start: range?.start, end: range?.end, highWaterMark: readSizeBytes });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const stats = await stat(this.#pathOf(key)).catch((error: unknown) => {
      if (isMissing(error)) return undefined;
      throw error;
    });
    return stats?.isFile() ? { key, sizeBytes: stats.size } : undefined;
  }

  async delete(key: string): Promise<void> {
    await unlink(this.#pathOf(key)).catch((error: unknown) => {
      // EISDIR: the key names a folder of other objects, so there is no object to delete.
      if (!isMissing(error) && errorCode(error) !== 'EISDIR') throw error;
    });
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertObjectPrefix(prefix);
    yield* this.#walk(prefix === '' ? this.#root : this.#pathOf(prefix.slice(0, -1)), prefix);
  }

  async ping(): Promise<void> {
    try {
      await access(this.#tmpDir, constants.R_OK | constants.W_OK | constants.X_OK);
    } catch (error) {
      throw objectStoreErrors.unavailable(error);
    }
  }

  /**
   * Deletes temp files last written before `olderThan`: writes that a crash cut off (a failed write
   * removes its own). A write in progress keeps its file's mtime fresh, and no request lives as long
   * as the grace the caller gives.
   */
  async sweepIncomplete(olderThan: Date): Promise<number> {
    let swept = 0;
    for (const name of await readdir(this.#tmpDir)) {
      const path = join(this.#tmpDir, name);
      const stats = await stat(path).catch((error: unknown) => {
        if (isMissing(error)) return undefined; // renamed into place or removed meanwhile
        throw error;
      });
      if (!stats?.isFile() || stats.mtimeMs >= olderThan.getTime()) continue;
      await rm(path, { force: true });
      swept++;
    }
    return swept;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Depth-first, each folder sorted as its key prefix would sort, so keys come out in S3's order. */
  async *#walk(dir: string, keyPrefix: string): AsyncGenerator<ObjectInfo> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    // `a/` must sort after `a-b` and `a.txt` but before `a0`, exactly as the full keys compare.
    const sortName = (entry: Dirent) => (entry.isDirectory() ? `${entry.name}/` : entry.name);
    entries.sort((a, b) => (sortName(a) < sortName(b) ? -1 : 1));
    for (const entry of entries) {
      const key = keyPrefix + entry.name;
      // Skips `.tmp` and anything else that no valid key could have written (symlinks included).
      if (!isValidKey(key)) continue;
      if (entry.isDirectory()) {
        yield* this.#walk(join(dir, entry.name), `${key}/`);
      } else if (entry.isFile()) {
        const stats = await stat(join(dir, entry.name)).catch((error: unknown) => {
          if (isMissing(error)) return undefined; // deleted while we listed
          throw error;
        });
        if (stats) yield { key, sizeBytes: stats.size };
      }
    }
  }

  #pathOf(key: string): string {
    assertObjectKey(key);
    const path = resolve(this.#root, key);
    // Defence in depth: assertObjectKey already rules out `..`, absolute keys and backslashes.
    const inside = relative(this.#root, path);
    if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
      throw objectStoreErrors.invalidKey('resolves outside the store');
    }
    return path;
  }
}

/** Bytes per read when streaming an object out; one buffer of this size per open read. */
const readSizeBytes = 256 * 1024;

/** Hashes the bytes on their way through; strings (any Readable may yield them) become UTF-8 bytes. */
function hashing(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer | string, _encoding, callback) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      hash.update(bytes);
      callback(null, bytes);
    },
  });
}

async function moveIntoPlace(tmpPath: string, path: string): Promise<void> {
  const parent = dirname(path);
  const firstCreated = await mkdir(parent, { recursive: true, mode: 0o700 }).catch((error: unknown) => {
    throw errorCode(error) === 'EEXIST' || errorCode(error) === 'ENOTDIR' ? folderClash() : error;
  });
  await rename(tmpPath, path).catch((error: unknown) => {
    throw errorCode(error) === 'EISDIR' ? folderClash() : error;
  });
  // The rename is durable once its folder is synced; folders mkdir just made need their parent synced
  // too, up to the first one that already existed.
  for (let dir = parent; ; dir = dirname(dir)) {
    await syncDirectory(dir);
    if (firstCreated === undefined || dir === dirname(firstCreated)) break;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function folderClash() {
  return objectStoreErrors.invalidKey('an object and a key prefix cannot share a name in the folder store');
}

function isValidKey(key: string): boolean {
  try {
    assertObjectKey(key);
    return true;
  } catch {
    return false;
  }
}

function errorCode(error: unknown): unknown {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** ENOTDIR: a segment of the path is a file, so nothing can exist below it. */
function isMissing(error: unknown): boolean {
  return errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR';
}
