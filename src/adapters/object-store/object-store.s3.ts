import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { isAppError } from '../../platform/errors.ts';
import { Semaphore } from '../../platform/semaphore.ts';
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

export interface S3ObjectStoreOptions {
  bucket: string;
  /** For S3-compatible servers (MinIO, Ceph, R2, s3rver); omitted means AWS. */
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  /** Omitted means the SDK's default chain (environment, shared config, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Keys per ListObjectsV2 page; only tests lower it, to exercise paging. */
  listPageSize?: number;
  /** Streamed uploads buffering parts at once, store-wide; default `defaultStreamedPuts`. */
  maxStreamedPuts?: number;
}

/**
 * Streamed uploads that may buffer parts at the same time; the others wait their turn without
 * reading their bodies (TCP holds the client back). Each buffers up to 2 parts, so the store holds
 * at most about 4 x 10 MiB however many uploads arrive together. A body given as bytes is already
 * in memory and never waits. A waiting upload's connection is idle: past the server's 30 s
 * connection timeout it is cut, which under a burst on a slow S3 trades some failed uploads for a
 * bounded heap (16 unbounded ones peaked at 736 MiB RSS in the bench, and all timed out).
 */
export const defaultStreamedPuts = 4;

/**
 * Parts are buffered in memory before they are sent: one upload holds the part being sent and the
 * one being filled, 2 x 5 MiB (5 MiB is S3's smallest part). Sixteen parallel uploads held up to
 * 24 MiB each with 8 MiB parts and a queue of two. S3 allows 10,000 parts: objects up to ~48 GiB.
 */
const partSizeBytes = 5 * 1024 * 1024;
const partQueueSize = 1;

/** How long a streamed upload waits for its turn: longer than any request may take (60 s). */
const streamedPutWaitMs = 120_000;

export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3';
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #listPageSize: number;
  readonly #streamedPuts: Semaphore;

  constructor(options: S3ObjectStoreOptions) {
    this.#streamedPuts = new Semaphore(options.maxStreamedPuts ?? defaultStreamedPuts);
    this.#bucket = options.bucket;
    this.#listPageSize = options.listPageSize ?? 1000;
    this.#client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      // Since SDK 3.729 the defaults (WHEN_SUPPORTED) add CRC32 checksum headers to every upload and
      // ask for checksums on every download. Many S3-compatible servers reject those headers (R2,
      // B2, older MinIO: aws/aws-sdk-js-v3#6810). We lose nothing by opting out: lib-storage sends
      // every part as a Buffer, so SigV4 signs its SHA-256 (x-amz-content-sha256) and the server
      // verifies it, and we hash the whole object ourselves.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        // An unreachable endpoint fails in seconds (plus the SDK's 3 attempts), not minutes.
        connectionTimeout: 3_000,
        // A stalled server: no byte either way for this long aborts the request or the download.
        socketTimeout: 30_000,
        // Upper bound from sending a request (a 5 MiB part included) to the response headers.
        requestTimeout: 120_000,
        throwOnRequestTimeout: true,
      },
    });
  }

  /** Resolves once S3 has confirmed the PutObject or CompleteMultipartUpload. */
  async put(key: string, body: Readable | Uint8Array, options?: PutObjectOptions): Promise<StoredObject> {
    assertObjectKey(key);
    if (body instanceof Uint8Array) return this.#put(key, body, options);
    const turn = await this.#streamedPuts.run(() => this.#put(key, body, options), streamedPutWaitMs);
    if (!turn.ran) throw objectStoreErrors.unavailable(new Error('too many streamed uploads waiting'));
    return turn.value;
  }

  async #put(key: string, body: Readable | Uint8Array, options?: PutObjectOptions): Promise<StoredObject> {
    const hash = options?.checksum === false ? undefined : createHash('sha256');
    let sizeBytes = 0;
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash?.update(chunk);
        sizeBytes += chunk.length;
        callback(null, chunk);
      },
    });
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.#bucket, Key: key, Body: hashing, ContentType: options?.contentType },
      partSize: partSizeBytes,
      queueSize: partQueueSize,
      leavePartsOnError: false, // a failed multipart upload is aborted, so no orphaned parts are billed
    });
    const [piped, uploaded] = await Promise.allSettled([
      pipeline(body instanceof Uint8Array ? Readable.from([body]) : body, hashing),
      upload.done().catch((error: unknown) => {
        hashing.destroy(); // nobody reads it any more; this ends the pipeline instead of stalling it
        throw error;
      }),
    ]);
    // A body that failed (a client that hung up) explains more than the upload's reaction to it.
    if (!(body instanceof Uint8Array) && body.errored) throw body.errored;
    if (uploaded.status === 'rejected') throw toObjectStoreError(uploaded.reason);
    if (piped.status === 'rejected') throw piped.reason;
    return { key, sizeBytes, sha256: hash ? hash.digest('hex') : '' };
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    assertObjectKey(key);
    if (range) assertByteRange(range);
    try {
      const response = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          Range: range && `bytes=${range.start}-${range.end ?? ''}`,
        }),
      );
      // In Node the SDK's body is the http.IncomingMessage, a Readable.
      return response.Body as Readable;
    } catch (error) {
      if (range && error instanceof S3ServiceException && error.name === 'InvalidRange') {
        return Readable.from([]); // starts at or past the end: no bytes, as in the folder store
      }
      throw toObjectStoreError(error);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertObjectKey(key);
    try {
      const response = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }));
      return { key, sizeBytes: response.ContentLength ?? 0 };
    } catch (error) {
      const mapped = toObjectStoreError(error);
      if (isAppError(mapped) && mapped.code === objectStoreErrors.notFound.code) return undefined;
      throw mapped;
    }
  }

  async delete(key: string): Promise<void> {
    assertObjectKey(key);
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }));
    } catch (error) {
      throw toObjectStoreError(error);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertObjectPrefix(prefix);
    let continuationToken: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: prefix,
            ContinuationToken: continuationToken,
            MaxKeys: this.#listPageSize,
          }),
        );
      } catch (error) {
        throw toObjectStoreError(error);
      }
      for (const object of page.Contents ?? []) {
        // Objects put there by other tools (folder markers like `a/`, odd names) are not ours to show.
        if (object.Key !== undefined && isValidKey(object.Key)) {
          yield { key: object.Key, sizeBytes: object.Size ?? 0 };
        }
      }
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
  }

  async ping(): Promise<void> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket }));
    } catch (error) {
      // Here even a 404 (no such bucket) or 403 means the store is not usable.
      throw objectStoreErrors.unavailable(error);
    }
  }

  close(): Promise<void> {
    this.#client.destroy();
    return Promise.resolve();
  }
}

/**
 * Reads `s3://bucket?endpoint=http://127.0.0.1:4569&region=us-east-1&forcePathStyle=true`.
 * Credentials never come from the URL: URLs end up in logs, process lists and error reports.
 */
export function parseS3Url(url: string): Omit<S3ObjectStoreOptions, 'credentials' | 'listPageSize'> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('invalid S3 URL: expected s3://bucket?region=...');
  }
  if (parsed.protocol !== 's3:') throw new Error('invalid S3 URL: the scheme must be s3://');
  if (parsed.username || parsed.password) {
    throw new Error('invalid S3 URL: credentials are not accepted in the URL; configure them separately');
  }
  const bucket = parsed.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new Error('invalid S3 URL: the bucket name must be 3-63 characters of [a-z0-9.-]');
  }
  if (parsed.port || (parsed.pathname !== '' && parsed.pathname !== '/') || parsed.hash) {
    throw new Error('invalid S3 URL: only s3://bucket with query parameters is accepted');
  }
  const known = new Set(['endpoint', 'region', 'forcePathStyle']);
  for (const name of parsed.searchParams.keys()) {
    if (!known.has(name)) throw new Error(`invalid S3 URL: unknown parameter ${name}`);
  }
  const endpoint = parsed.searchParams.get('endpoint') ?? undefined;
  if (endpoint !== undefined) {
    let endpointUrl: URL;
    try {
      endpointUrl = new URL(endpoint);
    } catch {
      throw new Error('invalid S3 URL: endpoint must be an http(s) URL');
    }
    if (endpointUrl.protocol !== 'http:' && endpointUrl.protocol !== 'https:') {
      throw new Error('invalid S3 URL: endpoint must be an http(s) URL');
    }
    if (endpointUrl.username || endpointUrl.password) {
      throw new Error('invalid S3 URL: credentials are not accepted in the URL; configure them separately');
    }
  }
  const forcePathStyle = parsed.searchParams.get('forcePathStyle') ?? 'false';
  if (forcePathStyle !== 'true' && forcePathStyle !== 'false') {
    throw new Error('invalid S3 URL: forcePathStyle must be true or false');
  }
  return {
    bucket,
    endpoint,
    region: parsed.searchParams.get('region') ?? 'us-east-1',
    forcePathStyle: forcePathStyle === 'true',
  };
}

function toObjectStoreError(error: unknown): unknown {
  if (isAppError(error)) return error;
  // NoSuchKey from GET; a HEAD has no body, so a missing key there is just `NotFound`.
  if (error instanceof S3ServiceException && (error.name === 'NoSuchKey' || error.name === 'NotFound')) {
    return objectStoreErrors.notFound();
  }
  // Everything else the SDK raises: refused or timed-out connections, 5xx after retries, and
  // 403/NoSuchBucket, which are misconfiguration: the store is unusable either way.
  return objectStoreErrors.unavailable(error);
}

function isValidKey(key: string): boolean {
  try {
    assertObjectKey(key);
    return true;
  } catch {
    return false;
  }
}
