import { commonErrors } from '../../platform/errors.ts';
import type { ByteRange } from '../../ports/object-store.port.ts';

/**
 * Both stores read a range the same way: inclusive offsets, clipped to the object, and a range that
 * starts at or past the end yields no bytes (S3 would answer 416; the folder store reads nothing).
 */
export function assertByteRange(range: ByteRange): void {
  const { start, end } = range;
  const isOffset = (value: number) => Number.isSafeInteger(value) && value >= 0;
  if (!isOffset(start) || (end !== undefined && (!isOffset(end) || end < start))) {
    throw commonErrors.invalidRequest('a byte range needs whole offsets with 0 <= start <= end');
  }
}
