import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3rver } from '../../../test/support/s3rver.ts';
import { type ObjectStore, scopeObjectStore } from '../../ports/object-store.port.ts';
import { FsObjectStore } from './object-store.fs.ts';
import { S3ObjectStore } from './object-store.s3.ts';

interface Harness {
  store: ObjectStore;
  /** Every object physically present anywhere the store could write, to prove a rejection wrote nothing. */
  everything(): Promise<string[]>;
  teardown(): Promise<void>;
}

async function startFsHarness(): Promise<Harness & { rootDir: string }> {
  const parent = await mkdtemp(join(tmpdir(), 'strongroom-fs-store-'));
  const rootDir = join(parent, 'root');
  return {
    rootDir,
    store: new FsObjectStore({ rootDir }),
    everything: () => listFiles(parent),
    teardown: () => rm(parent, { recursive: true, force: true }),
  };
}

async function startS3Harness(): Promise<Harness> {
  const s3 = await startS3rver();
  const options = {
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: s3.credentials,
  };
  const store = new S3ObjectStore({ ...options, bucket: s3.bucket });
  const raw = new S3Client(options);
  return {
    store,
    everything: async () => {
      const page = await raw.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
      return (page.Contents ?? []).map((object) => object.Key ?? '').sort();
    },
    teardown: async () => {
      await store.close();
      raw.destroy();
      await s3.stop();
    },
  };
}

const implementations: Array<[string, () => Promise<Harness>]> = [
  ['FsObjectStore', startFsHarness],
  ['S3ObjectStore on s3rver', startS3Harness],
];

const mib = 1024 * 1024;

const hostileKeys = [
  '../x',
  'a/../../b',
  '/abs',
  'a//b',
  'a/',
  '.',
  '..',
  'a/./b',
  '.hidden',
  '.tmp/x',
  'a\u0000b',
  'a\\..\\b',
  'x'.repeat(2000),
  'tenants/é',
  'ключ',
  ' a',
  '',
];

describe.each(implementations)('ObjectStore contract: %s', (_name, startHarness) => {
  let harness: Harness;
  let store: ObjectStore;
  /** Each test writes under its own prefix, so tests cannot see each other's objects. */
  const fresh = () => `t-${randomUUID()}/`;

  beforeAll(async () => {
    harness = await startHarness();
    store = harness.store;
  });
  afterAll(() => harness?.teardown());

  it('round-trips a Buffer and returns its size and SHA-256', async () => {
    const key = `${fresh()}every-byte`;
    const body = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const stored = await store.put(key, body, { contentType: 'application/octet-stream' });
    expect(stored).toEqual({ key, sizeBytes: 256, sha256: sha256(body) });
    expect(await readAll(await store.get(key))).toEqual(body);
    expect(await store.head(key)).toEqual({ key, sizeBytes: 256 });
  });

  it('round-trips an empty object', async () => {
    const key = `${fresh()}empty`;
    expect(await store.put(key, new Uint8Array(0))).toEqual({
      key,
      sizeBytes: 0,
      sha256: sha256(Buffer.alloc(0)),
    });
    expect((await readAll(await store.get(key))).length).toBe(0);
  });

  it('streams a 10 MiB body in and out, hashing it on the way in', async () => {
    const key = `${fresh()}large.bin`;
    const { stream, digest } = generatedStream(10 * mib);
    const stored = await store.put(key, stream);
    expect(stored.sizeBytes).toBe(10 * mib);
    expect(stored.sha256).toBe(digest());
    const download = createHash('sha256');
    let downloadedBytes = 0;
    for await (const chunk of await store.get(key)) {
      download.update(chunk as Buffer);
      downloadedBytes += (chunk as Buffer).length;
    }
    expect(downloadedBytes).toBe(10 * mib);
    expect(download.digest('hex')).toBe(stored.sha256);
  });

  it('reads inclusive byte ranges, clipped to the object', async () => {
    const key = `${fresh()}digits`;
    await store.put(key, Buffer.from('0123456789'));
    const read = async (start: number, end?: number) =>
      (await readAll(await store.get(key, { start, end }))).toString();
    expect(await read(2, 5)).toBe('2345');
    expect(await read(3, 3)).toBe('3'); // not (0, 0): s3rver reads `bytes=0-0` as `bytes=0-`
    expect(await read(7)).toBe('789');
    expect(await read(8, 100)).toBe('89');
    expect(await read(10)).toBe('');
    expect(await read(50, 60)).toBe('');
  });

  it('rejects malformed byte ranges', async () => {
    const key = `${fresh()}digits`;
    await store.put(key, Buffer.from('0123456789'));
    for (const range of [
      { start: -1 },
      { start: 5, end: 4 },
      { start: 1.5 },
      { start: 0, end: Number.NaN },
    ]) {
      await expect(store.get(key, range)).rejects.toMatchObject({ code: 'invalid_request' });
    }
  });

  it('treats a missing key as absent: head is undefined, get rejects with object_not_found', async () => {
    const key = `${fresh()}missing`;
    expect(await store.head(key)).toBeUndefined();
    await expect(store.get(key)).rejects.toMatchObject({ code: 'object_not_found' });
    await expect(store.get(key, { start: 0, end: 1 })).rejects.toMatchObject({ code: 'object_not_found' });
  });

  it('deletes idempotently', async () => {
    const key = `${fresh()}doomed`;
    await store.put(key, Buffer.from('x'));
    await store.delete(key);
    expect(await store.head(key)).toBeUndefined();
    await expect(store.get(key)).rejects.toMatchObject({ code: 'object_not_found' });
    await store.delete(key);
    await store.delete(`${fresh()}never-existed`);
  });

  it('replaces an object on overwrite', async () => {
    const key = `${fresh()}doc`;
    await store.put(key, Buffer.from('first version, longer'));
    const stored = await store.put(key, Buffer.from('second'));
    expect(stored).toEqual({ key, sizeBytes: 6, sha256: sha256(Buffer.from('second')) });
    expect((await readAll(await store.get(key))).toString()).toBe('second');
    expect(await store.head(key)).toEqual({ key, sizeBytes: 6 });
  });

  it('rejects a put whose body fails midway and keeps the previous version', async () => {
    const base = fresh();
    await store.put(`${base}kept`, Buffer.from('old'));
    // 9 MiB before the failure: more than one S3 part, so a multipart upload has begun and must be aborted.
    for (const key of [`${base}kept`, `${base}new`]) {
      await expect(store.put(key, failingStream(9 * mib, 'client went away'))).rejects.toThrow(
        'client went away',
      );
    }
    expect((await readAll(await store.get(`${base}kept`))).toString()).toBe('old');
    expect(await store.head(`${base}new`)).toBeUndefined();
    expect(await collect(store.list(base))).toEqual([{ key: `${base}kept`, sizeBytes: 3 }]);
  });

  it('lists exactly the keys under a prefix, not its siblings', async () => {
    const base = fresh();
    const keys = ['a/2', 'a/1', 'a/sub/3', 'ab/4', 'a-b', 'a.txt', 'b/5', 'a0'];
    for (const key of keys) await store.put(base + key, Buffer.from(key));
    // The port promises no order (s3rver lists in its folder-walk order); the folder store's is tested below.
    const listed = async (prefix: string) =>
      (await collect(store.list(base + prefix))).map((info) => info.key.slice(base.length)).sort();

    expect(await listed('a/')).toEqual(['a/1', 'a/2', 'a/sub/3']);
    expect(await listed('ab/')).toEqual(['ab/4']);
    expect(await listed('a/sub/')).toEqual(['a/sub/3']);
    expect(await listed('nothing/')).toEqual([]);
    expect(await listed('a/1/')).toEqual([]); // `a/1` is an object, not a prefix
    expect(await listed('')).toEqual([...keys].sort());
    expect(await collect(store.list(`${base}a/sub/`))).toEqual([{ key: `${base}a/sub/3`, sizeBytes: 7 }]);
  });

  it('rejects malformed listing prefixes', async () => {
    for (const prefix of ['a', '/a/', '../', 'a//', './']) {
      await expect(attempt(() => collect(store.list(prefix)))).rejects.toMatchObject({
        code: 'invalid_object_key',
      });
    }
  });

  it('rejects hostile keys with invalid_object_key and writes nothing', async () => {
    const before = await harness.everything();
    for (const key of hostileKeys) {
      await expect(store.put(key, Buffer.from('evil'))).rejects.toMatchObject({ code: 'invalid_object_key' });
      await expect(store.put(key, Readable.from([Buffer.from('evil')]))).rejects.toMatchObject({
        code: 'invalid_object_key',
      });
      await expect(store.get(key)).rejects.toMatchObject({ code: 'invalid_object_key' });
      await expect(store.head(key)).rejects.toMatchObject({ code: 'invalid_object_key' });
      await expect(store.delete(key)).rejects.toMatchObject({ code: 'invalid_object_key' });
    }
    expect(await harness.everything()).toEqual(before);
  });

  it('confines a scoped store to its prefix', async () => {
    const base = fresh();
    const tenantA = scopeObjectStore(store, `${base}tenants/A/`);
    await store.put(`${base}tenants/B/secret`, Buffer.from('B only'));
    await store.put(`${base}tenants/AB/secret`, Buffer.from('AB only'));
    const stored = await tenantA.put('docs/1', Buffer.from('A'));
    expect(stored.key).toBe('docs/1');
    expect(await store.head(`${base}tenants/A/docs/1`)).toEqual({
      key: `${base}tenants/A/docs/1`,
      sizeBytes: 1,
    });

    const escapes = [
      '../B/secret',
      '../../tenants/B/secret',
      `/${base}tenants/B/secret`,
      '..',
      'docs/../../B/secret',
    ];
    for (const key of escapes) {
      await expect(tenantA.get(key)).rejects.toMatchObject({ code: 'invalid_object_key' });
      await expect(tenantA.head(key)).rejects.toMatchObject({ code: 'invalid_object_key' });
      await expect(tenantA.delete(key)).rejects.toMatchObject({ code: 'invalid_object_key' });
      await expect(tenantA.put(key, Buffer.from('overwrite'))).rejects.toMatchObject({
        code: 'invalid_object_key',
      });
    }
    // A valid key only ever names something inside A.
    expect(await tenantA.head('B/secret')).toBeUndefined();
    expect(await tenantA.head(`${base}tenants/B/secret`)).toBeUndefined();
    await expect(attempt(() => collect(tenantA.list('../')))).rejects.toMatchObject({
      code: 'invalid_object_key',
    });

    expect(await collect(tenantA.list(''))).toEqual([{ key: 'docs/1', sizeBytes: 1 }]);
    expect(await collect(tenantA.list('docs/'))).toEqual([{ key: 'docs/1', sizeBytes: 1 }]);
    expect((await readAll(await store.get(`${base}tenants/B/secret`))).toString()).toBe('B only');
  });
});

describe('FsObjectStore only', () => {
  let harness: Awaited<ReturnType<typeof startFsHarness>>;
  let store: ObjectStore;
  const tmpDir = () => join(harness.rootDir, '.tmp');

  beforeAll(async () => {
    harness = await startFsHarness();
    store = harness.store;
  });
  afterAll(() => harness?.teardown());

  it('creates its root owner-only and writes objects owner-only', async () => {
    await store.put('modes/file', Buffer.from('x'));
    expect((await stat(harness.rootDir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(harness.rootDir, 'modes'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(harness.rootDir, 'modes/file'))).mode & 0o777).toBe(0o600);
  });

  it('leaves no object and no partial file when the body fails', async () => {
    await expect(store.put('interrupted/obj', failingStream(3 * mib, 'boom'))).rejects.toThrow('boom');
    expect(await store.head('interrupted/obj')).toBeUndefined();
    expect(await readdir(tmpDir())).toEqual([]);
    expect(await listFiles(harness.rootDir)).not.toContainEqual(expect.stringContaining('interrupted'));
  });

  it('shows the object only once it is complete and renamed into place', async () => {
    const body = new PassThrough();
    const finalPath = join(harness.rootDir, 'staged/obj');
    const putting = store.put('staged/obj', body);
    body.write(Buffer.alloc(64 * 1024, 1));
    await until(async () => (await readdir(tmpDir())).length === 1);

    await expect(stat(finalPath)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await store.head('staged/obj')).toBeUndefined();
    expect(await collect(store.list(''))).not.toContainEqual(expect.objectContaining({ key: 'staged/obj' }));

    body.end(Buffer.alloc(64 * 1024, 2));
    expect((await putting).sizeBytes).toBe(128 * 1024);
    expect((await stat(finalPath)).size).toBe(128 * 1024);
    expect(await readdir(tmpDir())).toEqual([]);
  });

  it('lists keys in S3 order: by bytes of the whole key', async () => {
    for (const key of ['a/2', 'a/1', 'a/sub/3', 'ab/4', 'a-b', 'a.txt', 'b/5', 'a0']) {
      await store.put(`order/${key}`, Buffer.from(key));
    }
    const keys = (await collect(store.list('order/'))).map((info) => info.key.slice('order/'.length));
    // `-` and `.` sort before `/`, digits after it: a folder walk must not list `a/…` before `a-b`.
    expect(keys).toEqual(['a-b', 'a.txt', 'a/1', 'a/2', 'a/sub/3', 'a0', 'ab/4', 'b/5']);
  });

  it('refuses to let an object and a key prefix share a name', async () => {
    await store.put('clash/a/b', Buffer.from('x'));
    await expect(store.put('clash/a', Buffer.from('y'))).rejects.toMatchObject({
      code: 'invalid_object_key',
    });
    await store.put('clash/c', Buffer.from('x'));
    await expect(store.put('clash/c/d', Buffer.from('y'))).rejects.toMatchObject({
      code: 'invalid_object_key',
    });
    expect(await store.head('clash/a')).toBeUndefined();
    await store.delete('clash/a');
    expect(await readdir(tmpDir())).toEqual([]);
  });

  it('never writes outside its root, whatever the key', async () => {
    const units = ['a', 'b', '.', '/', '\\', '\u0000', '-', '_', 'é', ' ', '%', ':'];
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: fc.constantFrom(...units), maxLength: 12 }), async (key) => {
        try {
          await store.put(key, Buffer.from('p'));
        } catch (error) {
          expect(error).toMatchObject({ code: 'invalid_object_key' });
        }
      }),
      { numRuns: 300 },
    );
    const parent = join(harness.rootDir, '..');
    expect((await readdir(parent)).sort()).toEqual(['root']);
    expect(await readdir(tmpDir())).toEqual([]);
  });
});

describe('S3ObjectStore only', () => {
  it('pages through ListObjectsV2', async () => {
    const s3 = await startS3rver();
    const store = new S3ObjectStore({
      bucket: s3.bucket,
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: s3.credentials,
      listPageSize: 2,
    });
    try {
      // Same-length keys in one folder: s3rver pages by its folder-walk order, which only then
      // matches key order (with `a-b` beside `a/` it skips keys across pages).
      const keys = Array.from({ length: 7 }, (_, i) => `paged/k${i}`);
      for (const key of keys) await store.put(key, Buffer.from('x'));
      expect((await collect(store.list('paged/'))).map((info) => info.key)).toEqual(keys);
    } finally {
      await store.close();
      await s3.stop();
    }
  });

  it('fails fast with object_store_unavailable when the endpoint is unreachable', async () => {
    const store = new S3ObjectStore({
      bucket: 'unreachable-bucket',
      endpoint: 'http://127.0.0.1:1',
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    });
    const startedMs = Date.now();
    await expect(store.ping()).rejects.toMatchObject({ code: 'object_store_unavailable' });
    await expect(store.get('some/key')).rejects.toMatchObject({ code: 'object_store_unavailable' });
    await expect(store.put('some/key', Buffer.from('x'))).rejects.toMatchObject({
      code: 'object_store_unavailable',
    });
    expect(Date.now() - startedMs).toBeLessThan(5_000);
    await store.close();
  });
});

/** Turns a synchronous throw into a rejection, so both can be asserted the same way. */
function attempt<T>(operation: () => T | Promise<T>): Promise<T> {
  return Promise.resolve().then(operation);
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const result: T[] = [];
  for await (const item of items) result.push(item);
  return result;
}

/** Random bytes in 64 KiB chunks, produced on demand; `digest()` is their SHA-256 once consumed. */
function generatedStream(sizeBytes: number): { stream: Readable; digest(): string } {
  const hash = createHash('sha256');
  const stream = Readable.from(
    (function* () {
      for (let sent = 0; sent < sizeBytes; sent += 64 * 1024) {
        const chunk = randomBytes(Math.min(64 * 1024, sizeBytes - sent));
        hash.update(chunk);
        yield chunk;
      }
    })(),
  );
  return { stream, digest: () => hash.digest('hex') };
}

/** Sends `sizeBytes` and then fails, like an upload whose client disconnects. */
function failingStream(sizeBytes: number, message: string): Readable {
  return Readable.from(
    (async function* () {
      for (let sent = 0; sent < sizeBytes; sent += 256 * 1024) yield randomBytes(256 * 1024);
      throw new Error(message);
    })(),
  );
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => !entry.isDirectory())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

async function until(condition: () => Promise<boolean>, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
