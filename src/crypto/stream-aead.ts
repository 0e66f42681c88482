import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { aesGcmNonceSizeBytes, aesGcmTagSizeBytes, aesKeySizeBytes, assertAesKey } from './aead.ts';
import { cryptoErrors } from './crypto.errors.ts';
import { deriveKey } from './hkdf.ts';

/*
 * Streaming AEAD for objects (attachments, snapshots, journal segments, exports): the segmented
 * construction of Hoang, Reyhanitabar, Rogaway and Vizár ("Online Authenticated-Encryption and its
 * Nonce-Reuse Misuse-Resistance", CRYPTO 2015) as Tink's AesGcmHkdfStreaming uses it.
 *
 *   header = "SRA1" ‖ version(1) ‖ chunkSizeBytes(uint32 BE) ‖ salt(32) ‖ noncePrefix(7)   (48 bytes)
 *   chunk i = AES-256-GCM(objectKey, nonce_i, plaintext_i, aad = header ‖ callerAad) ‖ tag(16)
 *   nonce_i = noncePrefix(7) ‖ i (uint32 BE) ‖ isFinal (1 byte: 0 or 1)
 *   objectKey = HKDF-SHA-256(dataKey, salt, "strongroom/stream/v1")
 *
 * The counter in the nonce makes reordering, duplication and dropping a middle chunk fail; the final
 * flag makes truncation at a chunk boundary and appending fail; the header in the associated data
 * makes header tampering fail.
 */

const magic = Buffer.from('SRA1', 'ascii');
const gcm = 'aes-256-gcm';
const formatVersion = 1;

/** 256-bit salt: a fresh object key per object, so nonces never need coordinating across objects. */
const saltSizeBytes = 32;

/**
 * 7-byte random prefix + 4-byte counter + 1-byte final flag = the 12-byte GCM nonce. The object key is
 * already unique per object (random salt), so the prefix is defence in depth, as in Tink.
 */
const noncePrefixSizeBytes = 7;

/** The counter is a uint32: at most 2^32 chunks per object (256 TiB at the default chunk size). */
const maxChunkIndex = 0xffff_ffff;

/** Versioned HKDF info (RFC 5869 §3.2) so stream keys can never collide with keys for other uses. */
const objectKeyInfo = 'strongroom/stream/v1';

/** Size of the header that starts every encrypted object. */
export const streamHeaderSizeBytes = magic.length + 1 + 4 + saltSizeBytes + noncePrefixSizeBytes;

/** 64 KiB: the per-chunk tag costs 0.02% and a reader holds at most one chunk in memory. */
export const defaultChunkSizeBytes = 64 * 1024;

/** Bounds on the chunk size: below 1 KiB the tag overhead grows; above 8 MiB the per-stream buffer does. */
export const minChunkSizeBytes = 1024;
export const maxChunkSizeBytes = 8 * 1024 * 1024;

export interface StreamHeader {
  formatVersion: number;
  chunkSizeBytes: number;
  salt: Buffer;
  noncePrefix: Buffer;
  /** The exact header bytes; they are part of every chunk's associated data. */
  bytes: Buffer;
}

export interface EncryptStreamOptions {
  /**
   * Caller context bound to every chunk, e.g. `encodeAad([tenantId, objectId])`: a ciphertext moved
   * to another tenant or object then fails to decrypt.
   */
  aad: Uint8Array;
  /** Plaintext bytes per chunk, `minChunkSizeBytes`..`maxChunkSizeBytes`; default 64 KiB. */
  chunkSizeBytes?: number;
}

export interface DecryptStreamOptions {
  /** The same associated data the object was encrypted with. */
  aad: Uint8Array;
  /**
   * The object's header, read separately (for HTTP Range). When given, the input starts directly at
   * a chunk instead of at the header.
   */
  header?: Uint8Array;
  /** Index of the first chunk in the input (for HTTP Range); default 0. */
  firstChunkIndex?: number;
  /**
   * Whether the input ends with the object's final chunk; default true. A range read that stops
   * before the object's end passes false: every chunk is then opened as non-final and the input must
   * end on a chunk boundary. The caller must then check it received every chunk it asked for.
   */
  hasFinalChunk?: boolean;
}

/**
 * A Transform that encrypts a byte stream into the format above. Memory is bounded by one chunk plus
 * whatever single write the producer hands it.
 */
export function createEncryptStream(dataKey: Uint8Array, options: EncryptStreamOptions): Transform {
  return createCodecTransform(new StreamEncryptor(dataKey, options));
}

/**
 * A Transform that decrypts and authenticates a stream made by `createEncryptStream`. It buffers at
 * most one chunk plus its tag, pushes a chunk's plaintext only after that chunk's tag verified, and
 * errors with `decryption_failed` on any tampering, truncation, wrong key or wrong `aad`.
 *
 * Plaintext arrives chunk by chunk, so a stream truncated or tampered with after chunk N has already
 * emitted the (authentic) chunks before N when it errors. Consumers must treat the whole stream as
 * failed when it errors: discard or delete what they wrote, and acknowledge only after the stream
 * ended cleanly (and, for stored objects, after the checksum matched).
 *
 * Throws `decryption_failed` at once if `options.header` is given and malformed.
 */
export function createDecryptStream(dataKey: Uint8Array, options: DecryptStreamOptions): Transform {
  return createCodecTransform(new StreamDecryptor(dataKey, options));
}

/** Encrypts a whole buffer into the stream format (small objects and tests). */
export function encryptBuffer(
  dataKey: Uint8Array,
  plaintext: Uint8Array,
  options: EncryptStreamOptions,
): Buffer {
  return runCodec(new StreamEncryptor(dataKey, options), plaintext);
}

/** Decrypts a whole buffer made by `encryptBuffer` or `createEncryptStream`; throws `decryption_failed`. */
export function decryptBuffer(
  dataKey: Uint8Array,
  sealed: Uint8Array,
  options: DecryptStreamOptions,
): Buffer {
  return runCodec(new StreamDecryptor(dataKey, options), sealed);
}

/**
 * Parses and validates a stream header (exactly `streamHeaderSizeBytes` bytes). Throws
 * `decryption_failed` if it is the wrong size, not this format, or an unsupported version. The
 * header is not authenticated until a chunk decrypts with it.
 */
export function readStreamHeader(header: Uint8Array): StreamHeader {
  if (header.length !== streamHeaderSizeBytes) throw cryptoErrors.decryptionFailed();
  const bytes = Buffer.from(header);
  const chunkSizeBytes = bytes.readUInt32BE(magic.length + 1);
  const isValid =
    bytes.subarray(0, magic.length).equals(magic) &&
    bytes[magic.length] === formatVersion &&
    isValidChunkSize(chunkSizeBytes);
  if (!isValid) throw cryptoErrors.decryptionFailed();
  const saltOffset = magic.length + 1 + 4;
  const prefixOffset = saltOffset + saltSizeBytes;
  return {
    formatVersion,
    chunkSizeBytes,
    salt: bytes.subarray(saltOffset, prefixOffset),
    noncePrefix: bytes.subarray(prefixOffset, prefixOffset + noncePrefixSizeBytes),
    bytes,
  };
}

/** Number of chunks an object of `plainSizeBytes` has: an empty object still has one (empty, final) chunk. */
export function countStreamChunks(plainSizeBytes: number, chunkSizeBytes = defaultChunkSizeBytes): number {
  assertSizeBytes(plainSizeBytes);
  assertChunkSize(chunkSizeBytes);
  return Math.max(1, Math.ceil(plainSizeBytes / chunkSizeBytes));
}

/** Exact encrypted size of a `plainSizeBytes` object: header + plaintext + one tag per chunk. */
export function encryptedSizeBytes(plainSizeBytes: number, chunkSizeBytes = defaultChunkSizeBytes): number {
  const chunkCount = countStreamChunks(plainSizeBytes, chunkSizeBytes);
  return streamHeaderSizeBytes + plainSizeBytes + chunkCount * aesGcmTagSizeBytes;
}

/**
 * Byte offset in the encrypted object where chunk `chunkIndex` starts. Chunk i holds plaintext bytes
 * `[i * chunkSizeBytes, (i + 1) * chunkSizeBytes)`.
 */
export function chunkCiphertextOffset(chunkIndex: number, chunkSizeBytes: number): number {
  assertChunkIndex(chunkIndex);
  assertChunkSize(chunkSizeBytes);
  return streamHeaderSizeBytes + chunkIndex * (chunkSizeBytes + aesGcmTagSizeBytes);
}

/**
 * Incremental encoder/decoder, like `Cipher#update/final`, shared by the streams and the buffer
 * helpers. Output buffers are never reused: they may be handed downstream.
 */
interface StreamCodec {
  update(input: Buffer): Buffer[];
  final(): Buffer[];
}

/*
 * Both codecs gather a chunk in one staging buffer that lives as long as the stream, so pieces of
 * any size (16 KiB from TLS, 64 KiB from a file) cost one copy into it and no allocation: the only
 * buffers allocated per chunk are the cipher's output. That matters more than the copy: every
 * allocated byte brings V8's next full garbage collection closer, and on a server's heap those
 * cost far more than memcpy. A chunk that arrives whole inside a larger write skips the staging
 * buffer altogether.
 */

class StreamEncryptor implements StreamCodec {
  readonly #header: StreamHeader;
  readonly #chunks: ChunkCipher;
  readonly #staged: ChunkStage;
  #chunkIndex = 0;
  #isHeaderWritten = false;

  constructor(dataKey: Uint8Array, options: EncryptStreamOptions) {
    assertAesKey(dataKey, 'data key');
    const chunkSizeBytes = options.chunkSizeBytes ?? defaultChunkSizeBytes;
    assertChunkSize(chunkSizeBytes);
    this.#header = createStreamHeader(chunkSizeBytes);
    this.#chunks = new ChunkCipher(dataKey, this.#header, options.aad);
    this.#staged = new ChunkStage(chunkSizeBytes);
  }

  update(plaintext: Buffer): Buffer[] {
    const output = this.#takeHeader();
    // A full chunk is held back until a byte beyond it arrives: only then is it certainly not final.
    this.#staged.feed(plaintext, (chunk) => this.#sealNext(chunk, false, output));
    return output;
  }

  final(): Buffer[] {
    const output = this.#takeHeader();
    // Whatever is left (0..chunkSizeBytes bytes) is the final chunk; an empty input gives one empty chunk.
    this.#sealNext(this.#staged.takeAll(), true, output);
    return output;
  }

  #takeHeader(): Buffer[] {
    if (this.#isHeaderWritten) return [];
    this.#isHeaderWritten = true;
    return [this.#header.bytes];
  }

  #sealNext(plaintext: Buffer, isFinal: boolean, output: Buffer[]): void {
    if (this.#chunkIndex > maxChunkIndex) throw new Error('stream exceeds the 2^32 chunk limit');
    this.#chunks.seal(this.#chunkIndex++, isFinal, plaintext, output);
  }
}

class StreamDecryptor implements StreamCodec {
  readonly #dataKey: Uint8Array;
  readonly #aad: Uint8Array;
  readonly #hasFinalChunk: boolean;
  /** The header's bytes while they arrive (when not given up front). */
  #headerBytes: Buffer | undefined;
  #headerSizeBytes = 0;
  #chunks: ChunkCipher | undefined;
  #staged: ChunkStage | undefined;
  #chunkIndex: number;

  constructor(dataKey: Uint8Array, options: DecryptStreamOptions) {
    assertAesKey(dataKey, 'data key');
    this.#dataKey = dataKey;
    this.#aad = options.aad;
    this.#hasFinalChunk = options.hasFinalChunk ?? true;
    this.#chunkIndex = options.firstChunkIndex ?? 0;
    assertChunkIndex(this.#chunkIndex);
    if (options.header !== undefined) this.#start(readStreamHeader(options.header));
  }

  update(sealed: Buffer): Buffer[] {
    let input = sealed;
    if (this.#staged === undefined) {
      this.#headerBytes ??= Buffer.alloc(streamHeaderSizeBytes);
      const taken = input.copy(this.#headerBytes, this.#headerSizeBytes, 0);
      this.#headerSizeBytes += taken;
      input = input.subarray(taken);
      if (this.#headerSizeBytes < streamHeaderSizeBytes) return [];
      this.#start(readStreamHeader(this.#headerBytes));
    }
    const output: Buffer[] = [];
    // Finality is decided at end of input: a chunk with bytes after it is opened as non-final, so at
    // most one sealed chunk stays buffered between calls.
    this.#staged!.feed(input, (chunk) => output.push(this.#openNext(chunk, false)));
    return output;
  }

  final(): Buffer[] {
    // Input ended inside the header: truncated (or not an encrypted object at all).
    if (this.#staged === undefined) throw cryptoErrors.decryptionFailed();
    const last = this.#staged.takeAll();
    if (this.#hasFinalChunk) return [this.#openNext(last, true)];
    // A range that stops before the object's end must end exactly on a chunk boundary.
    if (last.length !== this.#staged.chunkSizeBytes) throw cryptoErrors.decryptionFailed();
    return [this.#openNext(last, false)];
  }

  #start(header: StreamHeader): void {
    this.#chunks = new ChunkCipher(this.#dataKey, header, this.#aad);
    this.#staged = new ChunkStage(header.chunkSizeBytes + aesGcmTagSizeBytes);
    this.#headerBytes = undefined;
  }

  #openNext(sealed: Buffer, isFinal: boolean): Buffer {
    // No encoder ever produced a chunk past the counter's range, so such input is not authentic.
    if (this.#chunkIndex > maxChunkIndex) throw cryptoErrors.decryptionFailed();
    return this.#chunks!.open(this.#chunkIndex++, isFinal, sealed);
  }
}

/** Seals and opens single chunks of one object: the object key, nonce layout and associated data. */
class ChunkCipher {
  /** A KeyObject, not bytes: a cipher made from raw key bytes costs about five times as much. */
  readonly #objectKey: KeyObject;
  readonly #aad: Buffer;
  /** Rewritten for every chunk; createCipheriv copies it. */
  readonly #nonce = Buffer.alloc(aesGcmNonceSizeBytes);

  constructor(dataKey: Uint8Array, header: StreamHeader, callerAad: Uint8Array) {
    this.#objectKey = createSecretKey(deriveKey(dataKey, header.salt, objectKeyInfo, aesKeySizeBytes));
    header.noncePrefix.copy(this.#nonce, 0);
    // The header is authenticated with every chunk, so changing the chunk size, version or nonce
    // prefix fails at the first chunk (a changed salt already changes the key).
    this.#aad = Buffer.concat([header.bytes, callerAad]);
  }

  /** Appends `ciphertext ‖ tag` to `output`, as two buffers (joining them would copy the chunk). */
  seal(chunkIndex: number, isFinal: boolean, plaintext: Buffer, output: Buffer[]): void {
    const cipher = createCipheriv(gcm, this.#objectKey, this.#nonceFor(chunkIndex, isFinal), {
      authTagLength: aesGcmTagSizeBytes,
    });
    cipher.setAAD(this.#aad);
    const ciphertext = cipher.update(plaintext);
    if (ciphertext.length > 0) output.push(ciphertext);
    // GCM's final() emits nothing, but it is what computes the tag.
    const rest = cipher.final();
    if (rest.length > 0) output.push(rest);
    output.push(cipher.getAuthTag());
  }

  /** Throws `decryption_failed` unless the chunk authenticates at this index and finality. */
  open(chunkIndex: number, isFinal: boolean, sealed: Buffer): Buffer {
    if (sealed.length < aesGcmTagSizeBytes) throw cryptoErrors.decryptionFailed();
    const tagOffset = sealed.length - aesGcmTagSizeBytes;
    try {
      // authTagLength pins the tag size so a shortened tag can never be accepted.
      const decipher = createDecipheriv(gcm, this.#objectKey, this.#nonceFor(chunkIndex, isFinal), {
        authTagLength: aesGcmTagSizeBytes,
      });
      decipher.setAAD(this.#aad);
      decipher.setAuthTag(sealed.subarray(tagOffset));
      const plaintext = decipher.update(sealed.subarray(0, tagOffset));
      // final() is where the tag is checked; until it returns, `plaintext` is unauthenticated and
      // must not leave. For GCM it emits nothing, so the plaintext needs no copy.
      const rest = decipher.final();
      return rest.length === 0 ? plaintext : Buffer.concat([plaintext, rest]);
    } catch {
      throw cryptoErrors.decryptionFailed();
    }
  }

  #nonceFor(chunkIndex: number, isFinal: boolean): Buffer {
    this.#nonce.writeUInt32BE(chunkIndex, noncePrefixSizeBytes);
    this.#nonce[noncePrefixSizeBytes + 4] = isFinal ? 1 : 0;
    return this.#nonce;
  }
}

/**
 * Cuts a byte stream into chunks of exactly `chunkSizeBytes`, holding back the last full one until
 * a byte beyond it arrives (so the caller knows it is not the final chunk). The chunks it hands
 * out are views of its staging buffer (or of the input) valid only during the callback.
 */
class ChunkStage {
  readonly chunkSizeBytes: number;
  /** Grows by doubling up to one chunk, so a small object never costs a whole chunk of memory. */
  #buffer: Buffer | undefined;
  #sizeBytes = 0;

  constructor(chunkSizeBytes: number) {
    this.chunkSizeBytes = chunkSizeBytes;
  }

  feed(input: Buffer, onChunk: (chunk: Buffer) => void): void {
    const chunkSize = this.chunkSizeBytes;
    let offset = 0;
    while (offset < input.length) {
      if (this.#sizeBytes === chunkSize) {
        onChunk(this.#buffer!.subarray(0, chunkSize));
        this.#sizeBytes = 0;
      }
      if (this.#sizeBytes === 0 && input.length - offset > chunkSize) {
        // A whole chunk with more bytes after it: straight from the input, no copy.
        onChunk(input.subarray(offset, offset + chunkSize));
        offset += chunkSize;
        continue;
      }
      const countBytes = Math.min(chunkSize - this.#sizeBytes, input.length - offset);
      this.#reserve(this.#sizeBytes + countBytes);
      input.copy(this.#buffer!, this.#sizeBytes, offset, offset + countBytes);
      this.#sizeBytes += countBytes;
      offset += countBytes;
    }
  }

  /** What is held (0..chunkSizeBytes bytes), as a view valid until the next `feed`. */
  takeAll(): Buffer {
    const held = this.#buffer === undefined ? Buffer.alloc(0) : this.#buffer.subarray(0, this.#sizeBytes);
    this.#sizeBytes = 0;
    return held;
  }

  #reserve(sizeBytes: number): void {
    const capacity = this.#buffer?.length ?? 0;
    if (sizeBytes <= capacity) return;
    let next = Math.max(capacity * 2, 16 * 1024);
    while (next < sizeBytes) next *= 2;
    const grown = Buffer.allocUnsafe(Math.min(next, this.chunkSizeBytes));
    if (this.#buffer !== undefined) this.#buffer.copy(grown, 0, 0, this.#sizeBytes);
    this.#buffer = grown;
  }
}

function createStreamHeader(chunkSizeBytes: number): StreamHeader {
  const bytes = Buffer.concat([
    magic,
    Buffer.from([formatVersion]),
    encodeUint32(chunkSizeBytes),
    randomBytes(saltSizeBytes),
    randomBytes(noncePrefixSizeBytes),
  ]);
  return readStreamHeader(bytes);
}

function createCodecTransform(codec: StreamCodec): Transform {
  return new Transform({
    transform(input: Buffer, _encoding, callback) {
      pushCodecOutput(this, () => codec.update(input), callback);
    },
    flush(callback) {
      pushCodecOutput(this, () => codec.final(), callback);
    },
  });
}

/** Runs one codec step; nothing is pushed if it throws, so no unauthenticated byte ever leaves. */
function pushCodecOutput(stream: Transform, step: () => Buffer[], callback: TransformCallback): void {
  let output: Buffer[];
  try {
    output = step();
  } catch (error) {
    callback(error as Error);
    return;
  }
  for (const bytes of output) stream.push(bytes);
  callback();
}

function runCodec(codec: StreamCodec, input: Uint8Array): Buffer {
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.length);
  return Buffer.concat([...codec.update(bytes), ...codec.final()]);
}

function encodeUint32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
}

function isValidChunkSize(chunkSizeBytes: number): boolean {
  return (
    Number.isInteger(chunkSizeBytes) &&
    chunkSizeBytes >= minChunkSizeBytes &&
    chunkSizeBytes <= maxChunkSizeBytes
  );
}

function assertChunkSize(chunkSizeBytes: number): void {
  if (!isValidChunkSize(chunkSizeBytes)) {
    throw new Error(`chunk size must be an integer in ${minChunkSizeBytes}..${maxChunkSizeBytes} bytes`);
  }
}

function assertChunkIndex(chunkIndex: number): void {
  if (!Number.isInteger(chunkIndex) || chunkIndex < 0 || chunkIndex > maxChunkIndex) {
    throw new Error(`chunk index must be an integer in 0..${maxChunkIndex}`);
  }
}

function assertSizeBytes(sizeBytes: number): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0)
    throw new Error('size must be a non-negative integer');
}
