import { createHash, timingSafeEqual } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { isAppError } from '../../platform/errors.ts';
import { attachmentErrors } from './attachment-input.ts';

/**
 * Counts and hashes an upload's plaintext on its way to the cipher, and stops it at the size limit,
 * so an oversized body fails while streaming instead of after it was stored.
 */
export class UploadMeter extends Transform {
  readonly #hash = createHash('sha256');
  readonly #maxBytes: number;
  #sizeBytes = 0;

  constructor(maxBytes: number) {
    super();
    this.#maxBytes = maxBytes;
  }

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /** SHA-256 of the plaintext; only meaningful once the whole body went through. */
  digest(): Buffer {
    return this.#hash.digest();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#sizeBytes += chunk.length;
    if (this.#sizeBytes > this.#maxBytes) {
      callback(attachmentErrors.tooLarge(this.#maxBytes));
      return;
    }
    this.#hash.update(chunk);
    callback(null, chunk);
  }
}

/**
 * Plaintext of a whole object, checked against its recorded size and SHA-256. The last piece is held
 * back until the check passed: a client never receives a complete body that failed it (the
 * connection is cut short instead), and an object of one chunk fails before any byte is sent.
 * Every failure on the way (object missing, authentication, checksum) becomes `integrity_error`.
 */
export async function* verifiedPlaintext(
  source: AsyncIterable<Buffer>,
  expected: { sizeBytes: number; sha256: Buffer },
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  let held: Buffer | undefined;
  try {
    for await (const piece of source) {
      if (held) yield held;
      hash.update(piece);
      sizeBytes += piece.length;
      held = piece;
    }
  } catch (error) {
    throw asIntegrityError(error);
  }
  const digest = hash.digest();
  if (sizeBytes !== expected.sizeBytes || !timingSafeEqual(digest, expected.sha256)) {
    throw attachmentErrors.integrity();
  }
  if (held) yield held;
}

/**
 * Bytes `[skip, skip + take)` of decrypted chunks (a Range read). Range reads are checked chunk by
 * chunk by the cipher; the whole-object checksum needs every byte, so only full reads check it.
 */
export async function* slicedPlaintext(
  source: AsyncIterable<Buffer>,
  skip: number,
  take: number,
): AsyncGenerator<Buffer> {
  let toSkip = skip;
  let toTake = take;
  try {
    for await (const piece of source) {
      let bytes = piece;
      if (toSkip > 0) {
        const skipped = Math.min(toSkip, bytes.length);
        bytes = bytes.subarray(skipped);
        toSkip -= skipped;
      }
      if (bytes.length === 0 || toTake === 0) continue;
      const taken = bytes.subarray(0, toTake);
      toTake -= taken.length;
      yield taken;
    }
  } catch (error) {
    throw asIntegrityError(error);
  }
  // The chunks asked for did not all arrive: the object is shorter than its metadata says.
  if (toTake > 0) throw attachmentErrors.integrity();
}

/**
 * Starts a body and waits for its first piece, so a failure there (wrong tenant's object, tampered
 * header, a one-chunk object that fails its checksum) is answered with a status, not a cut
 * connection.
 */
export async function primed(body: AsyncGenerator<Buffer>): Promise<Readable> {
  const first = await body.next();
  return Readable.from(
    (async function* () {
      if (!first.done) yield first.value;
      yield* body;
    })(),
    { objectMode: false },
  );
}

export function asIntegrityError(error: unknown): Error {
  if (isAppError(error) && error.code === 'integrity_error') return error;
  // Missing objects, failed authentication and malformed headers all mean the same to a reader.
  if (isAppError(error) && ['decryption_failed', 'object_not_found'].includes(error.code)) {
    return attachmentErrors.integrity();
  }
  return error as Error;
}
