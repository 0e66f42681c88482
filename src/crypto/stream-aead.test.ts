import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeAad } from './aead.ts';
import {
  chunkCiphertextOffset,
  countStreamChunks,
  createDecryptStream,
  createEncryptStream,
  decryptBuffer,
  defaultChunkSizeBytes,
  encryptBuffer,
  encryptedSizeBytes,
  readStreamHeader,
  streamHeaderSizeBytes,
} from './stream-aead.ts';

const decryptionFailed = expect.objectContaining({ code: 'decryption_failed', kind: 'invalid' });

const chunkSizeBytes = 1024;
const sealedChunkSizeBytes = chunkSizeBytes + 16;
const dataKey = randomBytes(32);
const aad = encodeAad(['tenant-a', 'object-1']);

function encrypt(plaintext: Uint8Array): Buffer {
  return encryptBuffer(dataKey, plaintext, { aad, chunkSizeBytes });
}

function decrypt(sealed: Uint8Array): Buffer {
  return decryptBuffer(dataKey, sealed, { aad });
}

/** The sealed chunk at `index` of a buffer made with the test chunk size. */
function sliceChunk(sealed: Buffer, index: number): Buffer {
  const start = chunkCiphertextOffset(index, chunkSizeBytes);
  return sealed.subarray(start, start + sealedChunkSizeBytes);
}

/** Splits `bytes` at the given cut points into pieces, to exercise arbitrary write boundaries. */
function splitAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    pieces.push(bytes.subarray(start, point));
    start = point;
  }
  return pieces;
}

async function pipeThrough(pieces: Buffer[], transform: NodeJS.ReadWriteStream): Promise<Buffer[]> {
  const output: Buffer[] = [];
  await pipeline(
    Readable.from(pieces),
    transform,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        output.push(chunk);
        callback();
      },
    }),
  );
  return output;
}

/** Plaintext sizes around the chunk boundaries, where framing bugs live. */
const interestingSize = fc.oneof(
  fc.constantFrom(
    0,
    1,
    chunkSizeBytes - 1,
    chunkSizeBytes,
    chunkSizeBytes + 1,
    2 * chunkSizeBytes - 1,
    2 * chunkSizeBytes,
    2 * chunkSizeBytes + 1,
    5 * chunkSizeBytes,
  ),
  fc.integer({ min: 0, max: 6 * chunkSizeBytes }),
);

describe('encryptBuffer / decryptBuffer', () => {
  it('round-trips every size, including empty, one chunk, multiples of the chunk size and ±1', () => {
    fc.assert(
      fc.property(interestingSize, (sizeBytes) => {
        const plaintext = randomBytes(sizeBytes);
        const sealed = encrypt(plaintext);
        expect(sealed.length).toBe(encryptedSizeBytes(sizeBytes, chunkSizeBytes));
        expect(decrypt(sealed)).toEqual(plaintext);
      }),
    );
  });

  it('turns an empty input into a header and exactly one empty final chunk', () => {
    const sealed = encrypt(new Uint8Array(0));
    expect(sealed.length).toBe(streamHeaderSizeBytes + 16);
    expect(decrypt(sealed).length).toBe(0);
  });

  it('writes a readable header with the chunk size and fresh randomness per object', () => {
    const first = readStreamHeader(encrypt(randomBytes(10)).subarray(0, streamHeaderSizeBytes));
    const second = readStreamHeader(encrypt(randomBytes(10)).subarray(0, streamHeaderSizeBytes));
    expect(first.bytes.subarray(0, 4).toString('ascii')).toBe('SRA1');
    expect(first.formatVersion).toBe(1);
    expect(first.chunkSizeBytes).toBe(chunkSizeBytes);
    expect(first.salt.length).toBe(32);
    expect(first.noncePrefix.length).toBe(7);
    expect(first.salt).not.toEqual(second.salt);
    expect(first.noncePrefix).not.toEqual(second.noncePrefix);
  });

  it('uses 64 KiB chunks by default', () => {
    const sealed = encryptBuffer(dataKey, randomBytes(10), { aad });
    expect(readStreamHeader(sealed.subarray(0, streamHeaderSizeBytes)).chunkSizeBytes).toBe(64 * 1024);
    expect(defaultChunkSizeBytes).toBe(64 * 1024);
  });

  it('rejects chunk sizes outside 1 KiB..8 MiB and keys that are not 32 bytes', () => {
    for (const badSize of [0, 1023, 8 * 1024 * 1024 + 1, 1500.5]) {
      expect(() => encryptBuffer(dataKey, randomBytes(1), { aad, chunkSizeBytes: badSize })).toThrow(
        /chunk size/,
      );
    }
    expect(() => encryptBuffer(randomBytes(16), randomBytes(1), { aad })).toThrow(/32 bytes/);
    expect(() => createDecryptStream(randomBytes(31), { aad })).toThrow(/32 bytes/);
  });
});

describe('tampering', () => {
  const plaintext = randomBytes(3 * chunkSizeBytes + 100);
  const sealed = encrypt(plaintext);
  const chunkCount = countStreamChunks(plaintext.length, chunkSizeBytes);

  it('has four chunks in the sample object', () => {
    expect(chunkCount).toBe(4);
  });

  it('fails when truncated at a chunk boundary', () => {
    for (let dropped = 1; dropped < chunkCount; dropped++) {
      const truncated = sealed.subarray(0, chunkCiphertextOffset(chunkCount - dropped, chunkSizeBytes));
      expect(() => decrypt(truncated)).toThrow(decryptionFailed);
    }
  });

  it('fails when truncated anywhere else, including inside the header or to the header alone', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: sealed.length - 1 }), (length) => {
        expect(() => decrypt(sealed.subarray(0, length))).toThrow(decryptionFailed);
      }),
    );
    expect(() => decrypt(sealed.subarray(0, streamHeaderSizeBytes))).toThrow(decryptionFailed);
    expect(() => decrypt(new Uint8Array(0))).toThrow(decryptionFailed);
  });

  it('fails when chunks are reordered', () => {
    const header = sealed.subarray(0, streamHeaderSizeBytes);
    const swapped = Buffer.concat([
      header,
      sliceChunk(sealed, 1),
      sliceChunk(sealed, 0),
      sealed.subarray(chunkCiphertextOffset(2, chunkSizeBytes)),
    ]);
    expect(swapped.length).toBe(sealed.length);
    expect(() => decrypt(swapped)).toThrow(decryptionFailed);
  });

  it('fails when a chunk is duplicated', () => {
    const duplicated = Buffer.concat([
      sealed.subarray(0, chunkCiphertextOffset(2, chunkSizeBytes)),
      sliceChunk(sealed, 1),
      sealed.subarray(chunkCiphertextOffset(2, chunkSizeBytes)),
    ]);
    expect(() => decrypt(duplicated)).toThrow(decryptionFailed);
  });

  it('fails when bytes or a whole chunk are appended after the final chunk', () => {
    expect(() => decrypt(Buffer.concat([sealed, Buffer.from([0])]))).toThrow(decryptionFailed);
    expect(() => decrypt(Buffer.concat([sealed, sliceChunk(sealed, 0)]))).toThrow(decryptionFailed);
    expect(() => decrypt(Buffer.concat([sealed, sealed.subarray(-116)]))).toThrow(decryptionFailed);
  });

  it('fails when chunks are spliced in from another object under the same key and aad', () => {
    const other = encrypt(randomBytes(plaintext.length));
    const spliced = Buffer.concat([
      sealed.subarray(0, chunkCiphertextOffset(1, chunkSizeBytes)),
      other.subarray(chunkCiphertextOffset(1, chunkSizeBytes)),
    ]);
    expect(() => decrypt(spliced)).toThrow(decryptionFailed);
  });

  it('fails when any header field is changed', () => {
    const fieldOffsets = { magic: 0, version: 4, chunkSize: 5, salt: 9, noncePrefix: 41, lastByte: 47 };
    for (const offset of Object.values(fieldOffsets)) {
      const tampered = Buffer.from(sealed);
      tampered[offset]! ^= 0x01;
      expect(() => decrypt(tampered)).toThrow(decryptionFailed);
    }
  });

  it('fails when the header claims another valid chunk size', () => {
    const tampered = Buffer.from(sealed);
    tampered.writeUInt32BE(2 * chunkSizeBytes, 5);
    expect(() => decrypt(tampered)).toThrow(decryptionFailed);
  });

  it('fails under the wrong key or the wrong aad (another tenant or object)', () => {
    expect(() => decryptBuffer(randomBytes(32), sealed, { aad })).toThrow(decryptionFailed);
    const otherObject = encodeAad(['tenant-a', 'object-2']);
    const otherTenant = encodeAad(['tenant-b', 'object-1']);
    expect(() => decryptBuffer(dataKey, sealed, { aad: otherObject })).toThrow(decryptionFailed);
    expect(() => decryptBuffer(dataKey, sealed, { aad: otherTenant })).toThrow(decryptionFailed);
  });

  it('fails when any single bit is flipped', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: sealed.length * 8 - 1 }), (bit) => {
        const tampered = Buffer.from(sealed);
        tampered[bit >> 3]! ^= 1 << (bit & 7);
        expect(() => decrypt(tampered)).toThrow(decryptionFailed);
      }),
    );
  });
});

describe('createEncryptStream / createDecryptStream', () => {
  it('round-trips whatever the write boundaries on either side', async () => {
    await fc.assert(
      fc.asyncProperty(
        interestingSize,
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        async (sizeBytes, plainCuts, sealedCuts) => {
          const plaintext = randomBytes(sizeBytes);
          const encrypt = createEncryptStream(dataKey, { aad, chunkSizeBytes });
          const sealed = Buffer.concat(await pipeThrough(splitAt(plaintext, plainCuts), encrypt));
          expect(sealed.length).toBe(encryptedSizeBytes(sizeBytes, chunkSizeBytes));
          const decrypt = createDecryptStream(dataKey, { aad });
          const output = await pipeThrough(splitAt(sealed, sealedCuts), decrypt);
          expect(Buffer.concat(output)).toEqual(plaintext);
          for (const piece of output) expect(piece.length).toBeLessThanOrEqual(chunkSizeBytes);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('is readable by decryptBuffer and the other way round', async () => {
    const plaintext = randomBytes(2 * chunkSizeBytes + 5);
    const streamed = Buffer.concat(
      await pipeThrough([plaintext], createEncryptStream(dataKey, { aad, chunkSizeBytes })),
    );
    expect(decrypt(streamed)).toEqual(plaintext);
    const output = await pipeThrough([encrypt(plaintext)], createDecryptStream(dataKey, { aad }));
    expect(Buffer.concat(output)).toEqual(plaintext);
  });

  it('errors with decryption_failed and never emits plaintext from a tampered chunk', async () => {
    const plaintext = randomBytes(4 * chunkSizeBytes);
    const sealed = encrypt(plaintext);
    const tampered = Buffer.from(sealed);
    tampered[chunkCiphertextOffset(2, chunkSizeBytes) + 10]! ^= 0xff;
    // Feed one byte-ish piece at a time so the stream has every chance to leak early.
    const pieces = splitAt(
      tampered,
      Array.from({ length: 200 }, (_, index) => index * 23),
    );
    const emitted: Buffer[] = [];
    const decrypt = createDecryptStream(dataKey, { aad });
    decrypt.on('data', (chunk: Buffer) => emitted.push(chunk));
    await expect(pipeline(Readable.from(pieces), decrypt)).rejects.toEqual(decryptionFailed);
    const received = Buffer.concat(emitted);
    // Only the authentic chunks before the tampered one may have come out, and only whole.
    expect(received.length % chunkSizeBytes).toBe(0);
    expect(received.length).toBeLessThanOrEqual(2 * chunkSizeBytes);
    expect(received).toEqual(plaintext.subarray(0, received.length));
  });

  it('errors with decryption_failed when truncated at a chunk boundary', async () => {
    const sealed = encrypt(randomBytes(3 * chunkSizeBytes));
    const truncated = sealed.subarray(0, chunkCiphertextOffset(2, chunkSizeBytes));
    await expect(pipeThrough([truncated], createDecryptStream(dataKey, { aad }))).rejects.toEqual(
      decryptionFailed,
    );
  });

  it('encrypts and decrypts a 64 MiB stream through pipeline, one bounded chunk at a time', async () => {
    const totalSizeBytes = 64 * 1024 * 1024;
    // Odd-sized writes, so chunk boundaries never line up with write boundaries.
    const pieceSizeBytes = 1024 * 1024 + 7;
    const sourceHash = createHash('sha256');
    async function* generatePlaintext(): AsyncGenerator<Buffer> {
      for (let offset = 0; offset < totalSizeBytes; offset += pieceSizeBytes) {
        const piece = randomBytes(Math.min(pieceSizeBytes, totalSizeBytes - offset));
        sourceHash.update(piece);
        yield piece;
      }
    }
    let sealedSizeBytes = 0;
    const countSealed = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
      for await (const piece of source) {
        sealedSizeBytes += piece.length;
        yield piece;
      }
    };
    const outputHash = createHash('sha256');
    let outputSizeBytes = 0;
    let largestOutputBytes = 0;
    await pipeline(
      generatePlaintext,
      createEncryptStream(dataKey, { aad }),
      countSealed,
      createDecryptStream(dataKey, { aad }),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          outputHash.update(chunk);
          outputSizeBytes += chunk.length;
          largestOutputBytes = Math.max(largestOutputBytes, chunk.length);
          callback();
        },
      }),
    );
    expect(outputSizeBytes).toBe(totalSizeBytes);
    expect(sealedSizeBytes).toBe(encryptedSizeBytes(totalSizeBytes));
    expect(outputHash.digest('hex')).toBe(sourceHash.digest('hex'));
    expect(largestOutputBytes).toBeLessThanOrEqual(defaultChunkSizeBytes);
  }, 120_000);
});

describe('range decryption', () => {
  const plaintext = randomBytes(10 * chunkSizeBytes + 321);
  const sealed = encrypt(plaintext);
  const headerBytes = sealed.subarray(0, streamHeaderSizeBytes);
  const chunkCount = countStreamChunks(plaintext.length, chunkSizeBytes);

  /** What an HTTP Range handler does for the inclusive plaintext range [start, end]. */
  async function readRange(start: number, end: number): Promise<Buffer> {
    const header = readStreamHeader(headerBytes);
    const firstChunkIndex = Math.floor(start / header.chunkSizeBytes);
    const lastChunkIndex = Math.floor(end / header.chunkSizeBytes);
    const from = chunkCiphertextOffset(firstChunkIndex, header.chunkSizeBytes);
    const to = Math.min(chunkCiphertextOffset(lastChunkIndex + 1, header.chunkSizeBytes), sealed.length);
    const decrypt = createDecryptStream(dataKey, {
      aad,
      header: headerBytes,
      firstChunkIndex,
      hasFinalChunk: lastChunkIndex === chunkCount - 1,
    });
    const output = Buffer.concat(await pipeThrough([sealed.subarray(from, to)], decrypt));
    const skipBytes = start - firstChunkIndex * header.chunkSizeBytes;
    return output.subarray(skipBytes, skipBytes + end - start + 1);
  }

  it('returns exactly the requested slice of the middle', async () => {
    const start = 3 * chunkSizeBytes + 17;
    const end = 6 * chunkSizeBytes + 500;
    expect(await readRange(start, end)).toEqual(plaintext.subarray(start, end + 1));
  });

  it('returns exactly the requested slice for any range', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: plaintext.length - 1 }),
        fc.integer({ min: 0, max: plaintext.length - 1 }),
        async (a, b) => {
          const [start, end] = a <= b ? [a, b] : [b, a];
          expect(await readRange(start, end)).toEqual(plaintext.subarray(start, end + 1));
        },
      ),
      { numRuns: 50 },
    );
  });

  it('fails when the chunks do not sit at the claimed index', () => {
    const middle = sealed.subarray(
      chunkCiphertextOffset(3, chunkSizeBytes),
      chunkCiphertextOffset(5, chunkSizeBytes),
    );
    const options = { aad, header: headerBytes, hasFinalChunk: false };
    expect(decryptBuffer(dataKey, middle, { ...options, firstChunkIndex: 3 })).toEqual(
      plaintext.subarray(3 * chunkSizeBytes, 5 * chunkSizeBytes),
    );
    expect(() => decryptBuffer(dataKey, middle, { ...options, firstChunkIndex: 4 })).toThrow(
      decryptionFailed,
    );
  });

  it('fails when a middle range is presented as ending with the final chunk, or ends mid-chunk', () => {
    const middle = sealed.subarray(
      chunkCiphertextOffset(3, chunkSizeBytes),
      chunkCiphertextOffset(5, chunkSizeBytes),
    );
    const options = { aad, header: headerBytes, firstChunkIndex: 3 };
    expect(() => decryptBuffer(dataKey, middle, { ...options, hasFinalChunk: true })).toThrow(
      decryptionFailed,
    );
    expect(() =>
      decryptBuffer(dataKey, middle.subarray(0, -1), { ...options, hasFinalChunk: false }),
    ).toThrow(decryptionFailed);
  });

  it('fails when the final chunk is presented as a middle one', () => {
    const last = sealed.subarray(chunkCiphertextOffset(chunkCount - 1, chunkSizeBytes));
    const options = { aad, header: headerBytes, firstChunkIndex: chunkCount - 1 };
    expect(decryptBuffer(dataKey, last, options)).toEqual(
      plaintext.subarray((chunkCount - 1) * chunkSizeBytes),
    );
    expect(() => decryptBuffer(dataKey, last, { ...options, hasFinalChunk: false })).toThrow(
      decryptionFailed,
    );
  });

  it('rejects a malformed header at once', () => {
    expect(() => createDecryptStream(dataKey, { aad, header: headerBytes.subarray(0, 47) })).toThrow(
      decryptionFailed,
    );
    const wrongMagic = Buffer.from(headerBytes);
    wrongMagic[0] = 0x58;
    expect(() => readStreamHeader(wrongMagic)).toThrow(decryptionFailed);
    const wrongVersion = Buffer.from(headerBytes);
    wrongVersion[4] = 2;
    expect(() => readStreamHeader(wrongVersion)).toThrow(decryptionFailed);
    const hugeChunks = Buffer.from(headerBytes);
    hugeChunks.writeUInt32BE(0xffff_ffff, 5);
    expect(() => readStreamHeader(hugeChunks)).toThrow(decryptionFailed);
  });
});

describe('sizes and offsets', () => {
  it('computes chunk counts, encrypted sizes and chunk offsets', () => {
    expect(streamHeaderSizeBytes).toBe(48);
    expect(countStreamChunks(0, 1024)).toBe(1);
    expect(countStreamChunks(1024, 1024)).toBe(1);
    expect(countStreamChunks(1025, 1024)).toBe(2);
    expect(encryptedSizeBytes(0, 1024)).toBe(48 + 16);
    expect(encryptedSizeBytes(2048, 1024)).toBe(48 + 2048 + 2 * 16);
    expect(encryptedSizeBytes(100)).toBe(48 + 100 + 16);
    expect(chunkCiphertextOffset(0, 1024)).toBe(48);
    expect(chunkCiphertextOffset(3, 1024)).toBe(48 + 3 * 1040);
  });

  it('rejects negative or fractional sizes and indexes', () => {
    expect(() => encryptedSizeBytes(-1)).toThrow();
    expect(() => encryptedSizeBytes(1.5)).toThrow();
    expect(() => chunkCiphertextOffset(-1, 1024)).toThrow();
    expect(() => chunkCiphertextOffset(2 ** 32, 1024)).toThrow();
    expect(() => createDecryptStream(dataKey, { aad, firstChunkIndex: -1 })).toThrow();
  });
});
