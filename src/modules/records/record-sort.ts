import { defineError } from '../../platform/errors.ts';
import { fieldNamePattern } from './record-filter.ts';

/**
 * The order of a record listing: `sort=created_at` (the default: creation order), `-created_at`, or a
 * top-level data field, `city` or `-city` (descending). A field name follows the filter grammar, so
 * nothing of it becomes SQL text. `created_at` always means creation order, even if the data has a
 * field of that name.
 *
 * Ordering by a field is Postgres's own total order on jsonb values: null < strings < numbers <
 * booleans < arrays < objects, strings in the database collation. Two reductions keep a cursor small
 * and still exact: strings compare by their first `sortStringChars` characters, and all arrays (and
 * all objects) compare equal to each other. Ties are broken by creation order (in the direction of the
 * sort), so the order is total and a keyset cursor resumes exactly. Records without the field come
 * last in both directions.
 */
export interface RecordSort {
  /** A top-level data field; undefined for creation order. */
  field: string | undefined;
  descending: boolean;
}

/** Where a listing resumes: after the record with this creation sequence number (and sort key). */
export interface RecordCursor {
  seq: string;
  /** For a field sort: the last record's sort key, or `missing` when it had no such field. */
  key?: { missing: true } | { missing: false; json: string };
}

/** Strings order by this many leading characters; a cursor carries at most that much of one. */
export const sortStringChars = 128;

export const maxCursorLength = 2048;

export const sortErrors = {
  invalidSort: defineError(
    'invalid_sort',
    'invalid',
    'sort is created_at, -created_at, or a top-level data field name, optionally prefixed with - for descending.',
  ),
  invalidCursor: defineError(
    'invalid_cursor',
    'invalid',
    'The cursor is malformed, or was made for another sort order: pass back nextCursor as given, with the same sort.',
  ),
};

const creationOrder = 'created_at';

export function parseSort(raw: string | undefined): RecordSort {
  if (raw === undefined) return { field: undefined, descending: false };
  const descending = raw.startsWith('-');
  const name = descending ? raw.slice(1) : raw;
  if (!fieldNamePattern.test(name)) throw sortErrors.invalidSort();
  return { field: name === creationOrder ? undefined : name, descending };
}

function sortText(sort: RecordSort): string {
  return `${sort.descending ? '-' : ''}${sort.field ?? creationOrder}`;
}

/**
 * Opaque to clients. Creation order keeps its original short form (`r<seq>`); any other sort carries
 * the sort it was made for, so a cursor cannot be replayed against a different order.
 */
export function encodeCursor(sort: RecordSort, cursor: RecordCursor): string {
  if (sort.field === undefined && !sort.descending) {
    return Buffer.from(`r${cursor.seq}`, 'utf8').toString('base64url');
  }
  const body: { s: string; q: string; k?: unknown } = { s: sortText(sort), q: cursor.seq };
  if (cursor.key && !cursor.key.missing) body.k = JSON.parse(cursor.key.json);
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

export function decodeCursor(sort: RecordSort, cursor: string): RecordCursor {
  if (cursor.length > maxCursorLength) throw sortErrors.invalidCursor();
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (sort.field === undefined && !sort.descending) {
    const match = /^r([1-9][0-9]{0,18})$/.exec(text);
    if (!match) throw sortErrors.invalidCursor();
    return { seq: match[1]! };
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw sortErrors.invalidCursor();
  }
  if (typeof body !== 'object' || body === null) throw sortErrors.invalidCursor();
  const { s, q, k } = body as { s?: unknown; q?: unknown; k?: unknown };
  if (s !== sortText(sort) || typeof q !== 'string' || !/^[1-9][0-9]{0,18}$/.test(q)) {
    throw sortErrors.invalidCursor();
  }
  if (sort.field === undefined) return { seq: q };
  if (!('k' in (body as object))) return { seq: q, key: { missing: true } };
  if (!isSortKey(k)) throw sortErrors.invalidCursor();
  return { seq: q, key: { missing: false, json: JSON.stringify(k) } };
}

/** Only values a listing can produce as a sort key, so the `::jsonb` parameter always parses. */
function isSortKey(value: unknown): boolean {
  if (value === null || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (typeof value === 'string') {
    return value.length <= 2 * sortStringChars && !value.includes('\u0000') && value.isWellFormed();
  }
  if (Array.isArray(value)) return value.length === 1 && value[0] === null;
  return typeof value === 'object' && Object.keys(value).length === 0;
}
