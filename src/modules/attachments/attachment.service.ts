import { pipeline, type Readable } from 'node:stream';
import { encodeAad } from '../../crypto/aead.ts';
import {
  chunkCiphertextOffset,
  countStreamChunks,
  createDecryptStream,
  createEncryptStream,
  encryptedSizeBytes,
  readStreamHeader,
  streamHeaderSizeBytes,
} from '../../crypto/stream-aead.ts';
import type { AnyKysely } from '../../db/database.ts';
import type { WithTenant } from '../../db/with-tenant.ts';
import { type Clock, systemClock } from '../../platform/clock.ts';
import { isAppError } from '../../platform/errors.ts';
import { newId, newTimeOrderedId, timeOfOrderedId } from '../../platform/ids.ts';
import { type ObjectStore, scopeObjectStore } from '../../ports/object-store.port.ts';
import { accessErrors } from '../access/policy.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import { authorizeInProject, authorizeProjectRole, type UserAccess } from '../projects/project.service.ts';
import { assertRoom, type TenantLimits } from '../quotas/quota.service.ts';
import { usageRepository } from '../quotas/usage.repository.ts';
import { recordErrors } from '../records/record-data.ts';
import { sortErrors } from '../records/record-sort.ts';
import {
  type Attachment,
  type AttachmentVersion,
  attachmentRepository,
  type NewVersion,
} from './attachment.repository.ts';
import {
  acceptContentType,
  acceptFilename,
  attachmentErrors,
  type PlainRange,
  parseRange,
} from './attachment-input.ts';
import {
  asIntegrityError,
  primed,
  slicedPlaintext,
  UploadMeter,
  verifiedPlaintext,
} from './attachment-streams.ts';

/** 1 GiB unless configured (STRONGROOM_ATTACHMENT_MAX_BYTES). */
export const defaultAttachmentMaxBytes = 1024 * 1024 * 1024;
/** Retired versions stay this long so a point-in-time restore finds them (STRONGROOM_RESTORE_WINDOW_DAYS). */
export const defaultRestoreWindowMs = 7 * 24 * 3600_000;
/**
 * An object younger than this is never swept as an orphan: its upload may still be committing. An
 * upload is bounded by the request timeout (60 s), so an hour leaves a wide margin.
 */
export const orphanGraceMs = 3600_000;

export const maxAttachmentListLimit = 200;

/**
 * Plaintext bytes per encrypted chunk of a new attachment. 256 KiB rather than the stream format's
 * 64 KiB default: a quarter of the per-chunk cost (a cipher, a tag, a stream step, a write) for
 * large files, while an upload holds about one chunk and a Range still decrypts at most two. The
 * chunk size is in every object's header and every version's row, so objects written with
 * another size stay readable.
 */
export const attachmentChunkSizeBytes = 256 * 1024;

/** What a client sends: the raw body and what it says about it. */
export interface Upload {
  body: Readable;
  filename?: string | undefined;
  contentType?: string | undefined;
  recordId?: string | undefined;
  /** Content-Length, when the client sent one: an oversized upload is refused before it is read. */
  declaredBytes?: number | undefined;
}

/** An attachment's bytes, ready to send: the whole file or one range of it. */
export interface AttachmentDownload {
  attachment: Attachment;
  range: (PlainRange & { sizeBytes: number }) | undefined;
  body: Readable;
}

export interface MaintenanceResult {
  purged: number;
  orphansSwept: number;
}

const purgeBatchSize = 500;
const sweepBatchSize = 500;

/**
 * Attachments: files of a project, stored as immutable, encrypted versions in the object store.
 * Bodies stream through the streaming AEAD under the tenant's data key and never sit whole in
 * memory. An upload is acknowledged only after the store confirmed the object and the metadata row
 * committed; a crash between the two leaves an orphan that `maintain` sweeps. Replacing writes a new
 * version, deleting writes a tombstone, and a retired version's object is purged only after it has
 * left the restore window.
 */
export class AttachmentService {
  readonly #withTenant: WithTenant;
  readonly #keys: TenantKeyService;
  readonly #objects: ObjectStore;
  readonly #clock: Clock;
  readonly #maxBytes: number;
  readonly #chunkSizeBytes: number;
  readonly #restoreWindowMs: number;
  readonly #limitsOf: (tenantId: string) => Promise<TenantLimits>;

  constructor(deps: {
    withTenant: WithTenant;
    keys: TenantKeyService;
    objects: ObjectStore;
    /** The tenant's quotas (QuotaService.limitsOf): attachment bytes count toward storage. */
    limitsOf: (tenantId: string) => Promise<TenantLimits>;
    clock?: Clock;
    maxBytes?: number;
    /** Chunk size of new objects; default `attachmentChunkSizeBytes` (tests use small ones). */
    chunkSizeBytes?: number;
    restoreWindowMs?: number;
  }) {
    this.#withTenant = deps.withTenant;
    this.#keys = deps.keys;
    this.#objects = deps.objects;
    this.#limitsOf = deps.limitsOf;
    this.#clock = deps.clock ?? systemClock;
    this.#maxBytes = deps.maxBytes ?? defaultAttachmentMaxBytes;
    this.#chunkSizeBytes = deps.chunkSizeBytes ?? attachmentChunkSizeBytes;
    this.#restoreWindowMs = deps.restoreWindowMs ?? defaultRestoreWindowMs;
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  async create(principal: UserAccess, projectId: string, upload: Upload): Promise<Attachment> {
    const id = newId();
    const recordId = upload.recordId;
    const checkLink = async (db: AnyKysely) => {
      await authorizeInProject(db, principal, projectId, 'attachments.write');
      if (recordId !== undefined && !(await attachmentRepository.recordExists(db, projectId, recordId))) {
        throw attachmentErrors.unknownRecord();
      }
    };
    return this.#store(principal, upload, checkLink, async (db, file) => {
      await attachmentRepository.insert(db, {
        id,
        projectId,
        recordId: recordId ?? null,
        userId: principal.userId,
        file,
      });
      return (await attachmentRepository.find(db, projectId, id))!;
    });
  }

  /** Writes a new version, if the attachment is still at `expectedVersion` (undefined: If-Match *). */
  async replace(
    principal: UserAccess,
    projectId: string,
    attachmentId: string,
    expectedVersion: number | undefined,
    upload: Upload,
  ): Promise<Attachment> {
    const checkCurrent = async (db: AnyKysely) => {
      await authorizeInProject(db, principal, projectId, 'attachments.write');
      const current = await attachmentRepository.find(db, projectId, attachmentId);
      if (!current) throw accessErrors.notFound();
      if (expectedVersion !== undefined && current.version !== expectedVersion) {
        throw recordErrors.preconditionFailed();
      }
    };
    return this.#store(principal, { ...upload, recordId: undefined }, checkCurrent, async (db, file) => {
      const changed = await attachmentRepository.addVersion(db, {
        id: attachmentId,
        projectId,
        userId: principal.userId,
        expectedVersion,
        file,
      });
      if (!changed) throw recordErrors.preconditionFailed();
      return (await attachmentRepository.find(db, projectId, attachmentId))!;
    });
  }

  /**
   * Checks (before reading a byte), streams the body into a new object, then checks again and
   * commits in one transaction, so a right revoked during a long upload is still honoured. Whatever
   * fails after the object was written deletes it (or leaves it to the orphan sweep).
   */
  async #store(
    principal: UserAccess,
    upload: Upload,
    check: (db: AnyKysely) => Promise<void>,
    commit: (db: AnyKysely, file: NewVersion) => Promise<Attachment>,
  ): Promise<Attachment> {
    const filename = acceptFilename(upload.filename);
    const contentType = acceptContentType(upload.contentType);
    if (upload.declaredBytes !== undefined && upload.declaredBytes > this.#maxBytes) {
      throw attachmentErrors.tooLarge(this.#maxBytes);
    }
    const { tenantId } = principal;
    const limits = await this.#limitsOf(tenantId);
    // The storage quota is checked before the first byte (against the declared length, if any) and
    // again with the real size in the commit, so a chunked body past the quota is refused and deleted.
    const hasRoom = async (db: AnyKysely, bytes: number) =>
      assertRoom(limits, await usageRepository.read(db), { bytes: Math.max(1, bytes) });
    await this.#withTenant(
      tenantId,
      async (scope) => {
        await check(scope.db);
        await hasRoom(scope.db, upload.declaredBytes ?? 0);
      },
      { readOnly: true },
    );
    const key = await this.#keys.getDataKey(tenantId);
    const objectKey = `attachments/${newTimeOrderedId(this.#clock.now().getTime())}`;
    const store = this.#tenantStore(tenantId);
    const meter = new UploadMeter(this.#maxBytes);
    const encrypt = createEncryptStream(key.bytes, {
      aad: objectAad(tenantId, objectKey),
      chunkSizeBytes: this.#chunkSizeBytes,
    });
    const sealed = pipeline(meter, encrypt, () => undefined);
    // The body is piped, not part of the pipeline: a refused upload must not destroy the request
    // (and with it the connection) before the refusal is sent.
    let clientFailed = false;
    const onClientGone = () => {
      if (upload.body.readableEnded) return;
      clientFailed = true;
      meter.destroy(attachmentErrors.uploadIncomplete());
    };
    upload.body.once('error', onClientGone).once('close', onClientGone).pipe(meter);
    try {
      // Every chunk carries its own GCM tag and the plaintext's SHA-256 is recorded: a store-side
      // hash of the ciphertext would be a third pass over every byte and is never read.
      const stored = await store.put(objectKey, sealed, {
        contentType: 'application/octet-stream',
        checksum: false,
      });
      if (stored.sizeBytes !== encryptedSizeBytes(meter.sizeBytes, this.#chunkSizeBytes)) {
        throw new Error('the object store kept a different number of bytes than were sent');
      }
    } catch (error) {
      if (isAppError(error) && error.code === attachmentErrors.tooLarge.code) throw error;
      if (clientFailed) throw attachmentErrors.uploadIncomplete();
      throw error;
    } finally {
      upload.body.off('error', onClientGone).off('close', onClientGone);
      upload.body.unpipe(meter);
    }
    const file: NewVersion = {
      objectKey,
      filename,
      contentType,
      sizeBytes: meter.sizeBytes,
      sha256: meter.digest(),
      chunkSizeBytes: this.#chunkSizeBytes,
      keyVersion: key.version,
    };
    try {
      return await this.#withTenant(tenantId, async (scope) => {
        await check(scope.db);
        await hasRoom(scope.db, file.sizeBytes);
        return commit(scope.db, file);
      });
    } catch (error) {
      // Nothing references the object; if this delete fails too, the sweep removes it later.
      await store.delete(objectKey).catch(() => undefined);
      throw error;
    }
  }

  /** The current version's bytes (or one range of them), authenticated as they stream. */
  async read(
    principal: UserAccess,
    projectId: string,
    attachmentId: string,
    rangeHeader?: string,
  ): Promise<AttachmentDownload> {
    const { attachment, file } = await this.#findLive(principal, projectId, attachmentId);
    const range = parseRange(rangeHeader, file.sizeBytes);
    const key = await this.#keys.getDataKey(principal.tenantId, file.keyVersion);
    const store = this.#tenantStore(principal.tenantId);
    const aad = objectAad(principal.tenantId, file.objectKey);
    try {
      if (!range) {
        const source = await store.get(file.objectKey);
        const plaintext = pipeline(source, createDecryptStream(key.bytes, { aad }), () => undefined);
        return { attachment, range: undefined, body: await primed(verifiedPlaintext(plaintext, file)) };
      }
      const body = await primed(this.#readRange(store, file, key.bytes, aad, range));
      return { attachment, range: { ...range, sizeBytes: file.sizeBytes }, body };
    } catch (error) {
      throw asIntegrityError(error);
    }
  }

  async *#readRange(
    store: ObjectStore,
    file: AttachmentVersion,
    dataKey: Uint8Array,
    aad: Buffer,
    range: PlainRange,
  ): AsyncGenerator<Buffer> {
    const chunkSize = file.chunkSizeBytes;
    const firstChunk = Math.floor(range.start / chunkSize);
    const lastChunk = Math.floor(range.end / chunkSize);
    const isLastOfObject = lastChunk === countStreamChunks(file.sizeBytes, chunkSize) - 1;
    const header = await readAll(
      await store.get(file.objectKey, { start: 0, end: streamHeaderSizeBytes - 1 }),
    );
    if (header.length !== streamHeaderSizeBytes || readStreamHeader(header).chunkSizeBytes !== chunkSize) {
      throw attachmentErrors.integrity();
    }
    const end = isLastOfObject
      ? encryptedSizeBytes(file.sizeBytes, chunkSize) - 1
      : chunkCiphertextOffset(lastChunk + 1, chunkSize) - 1;
    const source = await store.get(file.objectKey, {
      start: chunkCiphertextOffset(firstChunk, chunkSize),
      end,
    });
    const decrypt = createDecryptStream(dataKey, {
      aad,
      header,
      firstChunkIndex: firstChunk,
      hasFinalChunk: isLastOfObject,
    });
    const plaintext = pipeline(source, decrypt, () => undefined);
    yield* slicedPlaintext(plaintext, range.start - firstChunk * chunkSize, range.end - range.start + 1);
  }

  /** The attachment's metadata and every version it has had, newest first. */
  async get(
    principal: UserAccess,
    projectId: string,
    attachmentId: string,
  ): Promise<{ attachment: Attachment; versions: AttachmentVersion[] }> {
    return this.#withTenant(
      principal.tenantId,
      async (scope) => {
        const { attachment } = await liveAttachment(scope.db, principal, projectId, attachmentId);
        return { attachment, versions: await attachmentRepository.listVersions(scope.db, attachmentId) };
      },
      { readOnly: true },
    );
  }

  async list(
    principal: UserAccess,
    projectId: string,
    options: { recordId?: string | undefined; limit: number; cursor?: string | undefined },
  ): Promise<{ items: Attachment[]; nextCursor: string | null }> {
    const afterSeq = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    const limit = Math.min(Math.max(1, Math.floor(options.limit)), maxAttachmentListLimit);
    const items = await this.#withTenant(
      principal.tenantId,
      async (scope) => {
        await authorizeInProject(scope.db, principal, projectId, 'attachments.read');
        return attachmentRepository.list(scope.db, projectId, {
          recordId: options.recordId,
          limit,
          afterSeq,
        });
      },
      { readOnly: true },
    );
    const last = items.at(-1);
    return {
      items: items.map(({ seq: _seq, ...attachment }) => attachment),
      nextCursor: items.length === limit && last ? encodeCursor(last.seq) : null,
    };
  }

  /** Writes a tombstone; the versions' objects stay until they leave the restore window. */
  async delete(
    principal: UserAccess,
    projectId: string,
    attachmentId: string,
    expectedVersion: number | undefined,
  ): Promise<void> {
    await this.#withTenant(principal.tenantId, async (scope) => {
      await authorizeInProject(scope.db, principal, projectId, 'attachments.write');
      const done = await attachmentRepository.tombstone(scope.db, {
        id: attachmentId,
        projectId,
        userId: principal.userId,
        expectedVersion,
      });
      if (done) return;
      const current = await attachmentRepository.find(scope.db, projectId, attachmentId);
      throw current ? recordErrors.preconditionFailed() : accessErrors.notFound();
    });
  }

  /**
   * Store-wide housekeeping: removes the remains of uploads a crash cut off mid-stream (never named
   * by a key, so no tenant's sweep sees them) once they are older than the grace period.
   */
  async sweepIncompleteUploads(): Promise<number> {
    const olderThan = new Date(this.#clock.now().getTime() - orphanGraceMs);
    return (await this.#objects.sweepIncomplete?.(olderThan)) ?? 0;
  }

  /**
   * One tenant's housekeeping: purges objects of versions retired longer ago than the restore
   * window, then deletes objects no version knows (uploads cut off between the object write and
   * the commit) once they are older than the grace period.
   */
  async maintain(tenantId: string): Promise<MaintenanceResult> {
    const store = this.#tenantStore(tenantId);
    const now = this.#clock.now().getTime();
    let purged = 0;
    for (;;) {
      const keys = await this.#withTenant(
        tenantId,
        (scope) =>
          attachmentRepository.retiredBefore(scope.db, new Date(now - this.#restoreWindowMs), purgeBatchSize),
        { readOnly: true },
      );
      for (const objectKey of keys) await store.delete(objectKey);
      await this.#withTenant(tenantId, (scope) => attachmentRepository.markPurged(scope.db, keys));
      purged += keys.length;
      if (keys.length < purgeBatchSize) break;
    }
    let orphansSwept = 0;
    const sweep = async (candidates: string[]) => {
      const known = await this.#withTenant(
        tenantId,
        (scope) => attachmentRepository.knownObjectKeys(scope.db, candidates),
        { readOnly: true },
      );
      for (const objectKey of candidates) {
        if (known.has(objectKey)) continue;
        await store.delete(objectKey);
        orphansSwept++;
      }
    };
    let candidates: string[] = [];
    for await (const object of store.list('attachments/')) {
      const startedAt = timeOfOrderedId(object.key.slice('attachments/'.length));
      if (startedAt === undefined || startedAt > now - orphanGraceMs) continue;
      candidates.push(object.key);
      if (candidates.length === sweepBatchSize) {
        await sweep(candidates);
        candidates = [];
      }
    }
    await sweep(candidates);
    return { purged, orphansSwept };
  }

  async #findLive(
    principal: UserAccess,
    projectId: string,
    attachmentId: string,
  ): Promise<{ attachment: Attachment; file: AttachmentVersion }> {
    return this.#withTenant(
      principal.tenantId,
      (scope) => liveAttachment(scope.db, principal, projectId, attachmentId),
      { readOnly: true },
    );
  }

  /** Each tenant's objects live under their own prefix; no key given to the view can leave it. */
  #tenantStore(tenantId: string): ObjectStore {
    return scopeObjectStore(this.#objects, `tenants/${tenantId}/`);
  }
}

/**
 * Inside a tenant scope: a live attachment with its current version, in one query that also finds
 * the caller's project role; `not_found` for anything the caller may not read.
 */
async function liveAttachment(
  db: AnyKysely,
  principal: UserAccess,
  projectId: string,
  attachmentId: string,
): Promise<{ attachment: Attachment; file: AttachmentVersion }> {
  const access = await attachmentRepository.findWithAccess(db, projectId, attachmentId, principal.userId);
  if (!access) throw accessErrors.notFound();
  authorizeProjectRole(principal, projectId, access.role, 'attachments.read');
  if (!access.found) throw accessErrors.notFound();
  return access.found;
}

/**
 * Binds every chunk to its tenant and object: an object copied to another key or another tenant's
 * prefix fails to authenticate.
 */
export function objectAad(tenantId: string, objectKey: string): Buffer {
  return encodeAad(['strongroom/attachment/v1', tenantId, objectKey]);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of stream) pieces.push(piece as Buffer);
  return Buffer.concat(pieces);
}

function encodeCursor(seq: string): string {
  return Buffer.from(`a${seq}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const match =
    cursor.length <= 40 && /^a([1-9][0-9]{0,18})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw sortErrors.invalidCursor();
  return match[1]!;
}
