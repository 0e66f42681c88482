import { defineError } from '../../platform/errors.ts';

export const recordErrors = {
  invalidCollection: defineError(
    'invalid_collection',
    'invalid',
    'A collection name is 1-63 characters: a lower-case letter, then lower-case letters, digits or underscores.',
  ),
  notAnObject: defineError('record_not_object', 'invalid', 'Record data must be a JSON object.'),
  tooLarge: defineError(
    'record_too_large',
    'too_large',
    'Record data is larger than the configured limit (default 1 MiB of JSON).',
    (maxBytes: number) => ({
      message: `record data is larger than ${maxBytes} bytes of JSON`,
      details: { maxBytes },
    }),
  ),
  tooDeep: defineError(
    'record_too_deep',
    'invalid',
    `Record data nests objects and arrays more than ${64} levels deep.`,
  ),
  invalidText: defineError(
    'record_invalid_text',
    'invalid',
    'Record data holds a NUL character or an unpaired UTF-16 surrogate, which cannot be stored as text.',
  ),
  preconditionRequired: defineError(
    'precondition_required',
    'precondition_required',
    'Changing or deleting a record or an attachment (or changing an existing collection policy) needs an If-Match header with its ETag (as read), so concurrent edits are not lost.',
  ),
  preconditionFailed: defineError(
    'precondition_failed',
    'precondition_failed',
    'The record, attachment or policy changed since the ETag in If-Match was read (or, for If-Match: *, does not exist yet): read it again and retry.',
  ),
  invalidIfMatch: defineError('invalid_if_match', 'invalid', 'If-Match must be an ETag like "3", or *.'),
  integrityError: defineError(
    'integrity_error',
    'integrity',
    'Stored data (an encrypted record field or attachment) failed authentication or its checksum: corrupted, tampered with, moved or missing. It is never served; the failure is logged with the request id.',
    (recordId: string, field: string, cause?: unknown) => ({
      message: `the stored value of field ${field} of record ${recordId} failed its integrity check`,
      details: { recordId, field },
      cause,
    }),
  ),
  invalidIdempotencyKey: defineError(
    'invalid_idempotency_key',
    'invalid',
    'An Idempotency-Key is 1-200 characters of letters, digits and -_.:',
  ),
  idempotencyKeyReused: defineError(
    'idempotency_key_reused',
    'conflict',
    'This Idempotency-Key was already used for a different request.',
  ),
};

/** How deep objects and arrays may nest in record data. */
export const maxRecordDepth = 64;

const collectionPattern = /^[a-z][a-z0-9_]{0,62}$/;

export function acceptCollection(collection: unknown): string {
  if (typeof collection !== 'string' || !collectionPattern.test(collection))
    throw recordErrors.invalidCollection();
  return collection;
}

/**
 * Checks record data before it reaches the database: a JSON object, at most `maxBytes` of JSON, at
 * most `maxRecordDepth` levels, and only text Postgres can store (no NUL, no lone surrogates).
 */
export function acceptRecordData(data: unknown, maxBytes: number): Record<string, unknown> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw recordErrors.notAnObject();
  // Depth first (iteratively), so a hostile nesting never reaches a recursive serialiser.
  const stack: Array<[unknown, number]> = [[data, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (typeof value === 'string') {
      if (!isStorableText(value)) throw recordErrors.invalidText();
    } else if (typeof value === 'object' && value !== null) {
      if (depth > maxRecordDepth) throw recordErrors.tooDeep();
      const entries = Array.isArray(value) ? value.map((v) => ['', v] as const) : Object.entries(value);
      for (const [key, child] of entries) {
        if (!isStorableText(key)) throw recordErrors.invalidText();
        stack.push([child, depth + 1]);
      }
    }
  }
  if (Buffer.byteLength(JSON.stringify(data), 'utf8') > maxBytes) throw recordErrors.tooLarge(maxBytes);
  return data as Record<string, unknown>;
}

function isStorableText(text: string): boolean {
  return !text.includes('\u0000') && text.isWellFormed();
}

/**
 * RFC 7396 JSON Merge Patch on a record's data: members of `patch` replace the target's, `null`
 * removes one, nested objects merge recursively.
 */
export function mergePatch(
  target: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  const result: Record<string, unknown> = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else if (typeof value === 'object' && !Array.isArray(value)) {
      const current = result[key];
      const base =
        typeof current === 'object' && current !== null && !Array.isArray(current)
          ? (current as Record<string, unknown>)
          : {};
      result[key] = mergePatch(base, value as Record<string, unknown>);
    } else result[key] = value;
  }
  return result;
}

/** A record's ETag is its version, quoted (a strong validator). */
export function etagOf(version: number): string {
  return `"${version}"`;
}

/** The version an If-Match names; undefined for `*` (any current version). */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined) throw recordErrors.preconditionRequired();
  const value = header.trim();
  if (value === '*') return undefined;
  const match = /^"([1-9][0-9]{0,9})"$/.exec(value);
  if (!match) throw recordErrors.invalidIfMatch();
  return Number(match[1]);
}
