import { type CanonicalAuditFields, canonicalAuditFields, hashCanonical } from './audit-chain.ts';

/**
 * A page of the chain as verify reads it fast (`auditRepository.recordRange`): per entry its stored
 * links and its other columns as one Postgres record literal (`row(…)::text`). One string per entry
 * instead of sixteen is what makes a million entries cheap to receive and to hand to a worker thread.
 */
export interface RecordPage {
  /** The tenant of a tenant chain; null for the platform chain, whose records carry it. */
  tenantId: string | null;
  prevHashes: string[];
  hashes: string[];
  records: string[];
}

/**
 * 1 where the record parses and its stored hash is SHA-256(stored prev_hash ‖ canonical form), else
 * 0. A 0 is not a verdict: verify checks that page again from its plain columns
 * (`checkEntryHashes`), so a record this parser cannot read is never reported as tampered.
 */
export function checkRecordHashes(page: RecordPage): Uint8Array {
  const consistent = new Uint8Array(page.records.length);
  for (let i = 0; i < page.records.length; i++) {
    const record = page.records[i]!;
    const fields = parseStoredRecord(record, page.tenantId);
    const isPlain = !record.includes('""') && !escapedInRecord.test(record);
    const canonical = fields && canonicalAuditFields(fields, isPlain);
    consistent[i] =
      canonical !== undefined && hashCanonical(page.prevHashes[i]!, canonical) === page.hashes[i] ? 1 : 0;
  }
  return consistent;
}

/**
 * A value holding `"` is written `""` in a record literal (so is an empty one), a `\` as `\\`;
 * control characters are written as they are. A record with none of these has no value that JSON
 * escapes, so its canonical form needs no look at each value. (One class and one `includes` are
 * twice as fast as the same test as one regular expression with an alternative.)
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what JSON escapes.
const escapedInRecord = /[\\\u0000-\u001f\ud800-\udfff]/;

/**
 * The canonical fields of one record literal, in the column order `recordRange` selects: at,
 * actor_kind, actor_id, api_key_id, grant_id, action, resource_type, resource_id, outcome,
 * status_code, error_code, request_id, ip, user_agent, changes, and (platform chain) tenant_id.
 * Undefined for anything it does not fully understand.
 */
export function parseStoredRecord(text: string, tenantId: string | null): CanonicalAuditFields | undefined {
  const f = splitRecord(text);
  if (!f || f.length !== (tenantId === null ? 16 : 15)) return undefined;
  const at = f[0] === null ? undefined : isoFromTimestamptz(f[0]!);
  const changes = f[14] === null ? null : splitArray(f[14]!);
  if (at === undefined || changes === undefined || f[1] === null || f[5] === null || f[8] === null)
    return undefined;
  const status = f[9];
  if (status !== null && !/^-?\d{1,10}$/.test(status!)) return undefined;
  return {
    at,
    actorKind: f[1] as CanonicalAuditFields['actorKind'],
    actorId: f[2]!,
    apiKeyId: f[3]!,
    grantId: f[4]!,
    action: f[5]!,
    resourceType: f[6]!,
    resourceId: f[7]!,
    outcome: f[8] as CanonicalAuditFields['outcome'],
    statusCode: status === null ? null : Number(status),
    errorCode: f[10]!,
    requestId: f[11]!,
    ip: f[12]!,
    userAgent: f[13]!,
    changes,
    tenantId: tenantId ?? f[15]!,
  };
}

/**
 * Postgres `record_out`: `(v1,v2,…)`; a NULL is nothing between the commas; a value that is empty or
 * holds `"` `\` `(` `)` `,` or white space is double-quoted, with `"` written `""` and `\` written `\\`.
 */
function splitRecord(text: string): Array<string | null> | undefined {
  const end = text.length - 1;
  if (text[0] !== '(' || text[end] !== ')') return undefined;
  const fields: Array<string | null> = [];
  let i = 1;
  for (;;) {
    if (i === end || text[i] === ',') fields.push(null);
    else if (text[i] === '"') {
      const quoted = readQuoted(text, i, end, true);
      if (!quoted) return undefined;
      fields.push(quoted.value);
      i = quoted.next;
    } else {
      let j = text.indexOf(',', i);
      if (j === -1 || j > end) j = end;
      fields.push(text.slice(i, j));
      i = j;
    }
    if (i === end) return fields;
    if (text[i] !== ',') return undefined;
    i++;
  }
}

/**
 * Postgres `array_out` of a one-dimensional text array: `{a,b}`; an element that is empty, `NULL`,
 * or holds `"` `\` `{` `}` `,` or ASCII white space is double-quoted with `\` escapes; an unquoted `NULL`
 * is a null element. Anything else (bounds, more dimensions) is undefined.
 */
function splitArray(text: string): Array<string> | undefined {
  const end = text.length - 1;
  if (text[0] !== '{' || text[end] !== '}') return undefined;
  if (end === 1) return [];
  const items: string[] = [];
  let i = 1;
  for (;;) {
    if (text[i] === '"') {
      const quoted = readQuoted(text, i, end, false);
      if (!quoted) return undefined;
      items.push(quoted.value);
      i = quoted.next;
    } else {
      let j = i;
      while (j < end && text[j] !== ',') j++;
      const item = text.slice(i, j);
      if (item === '' || /[{}"\\ \t\n\r\v\f]/.test(item)) return undefined;
      // A null element: JSON writes it as null, as JSON.stringify does for a null in the array.
      items.push((item.toUpperCase() === 'NULL' ? null : item) as string);
      i = j;
    }
    if (i === end) return items;
    if (text[i] !== ',') return undefined;
    i++;
  }
}

/** A double-quoted value from `open` (its opening quote); `""` is a quote only in a record literal. */
function readQuoted(
  text: string,
  open: number,
  end: number,
  doubledQuotes: boolean,
): { value: string; next: number } | undefined {
  let value = '';
  let i = open + 1;
  for (;;) {
    const quote = text.indexOf('"', i);
    const backslash = text.indexOf('\\', i);
    if (quote === -1 || quote >= end) return undefined;
    if (backslash !== -1 && backslash < quote) {
      value += text.slice(i, backslash) + text.charAt(backslash + 1);
      i = backslash + 2;
    } else if (doubledQuotes && text[quote + 1] === '"') {
      value += `${text.slice(i, quote)}"`;
      i = quote + 2;
    } else {
      return { value: value + text.slice(i, quote), next: quote + 1 };
    }
  }
}

const timestamptzPattern =
  /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?$/;

/**
 * `timestamptz_out` (DateStyle ISO, any TimeZone) as the ISO 8601 UTC text an entry was hashed
 * with: milliseconds, extra digits dropped (as `to_char(…, 'MS')` does). Undefined for other forms
 * (BC, infinity, years after 9999, years before 100 outside UTC).
 */
export function isoFromTimestamptz(text: string): string | undefined {
  // The usual form, UTC with milliseconds: "2026-11-23 10:00:00.123+00".
  if (
    text.length === 26 &&
    text[10] === ' ' &&
    text[19] === '.' &&
    text.endsWith('+00') &&
    hasUtcMillisecondShape(text)
  )
    return `${text.slice(0, 10)}T${text.slice(11, 23)}Z`;
  const m = timestamptzPattern.exec(text);
  if (!m) return undefined;
  const ms = (m[7] ?? '').padEnd(3, '0').slice(0, 3);
  if (m[8] === '+' && m[9] === '00' && m[10] === undefined && m[11] === undefined)
    return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${ms}Z`;
  const year = Number(m[1]);
  if (year < 100) return undefined;
  const offsetS = (Number(m[9]) * 60 + Number(m[10] ?? 0)) * 60 + Number(m[11] ?? 0);
  const local = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  const utc = local - (m[8] === '-' ? -offsetS : offsetS) * 1000 + Number(ms);
  const iso = new Date(utc).toISOString();
  return iso.length === 24 ? iso : undefined;
}

/** Digits and separators where "YYYY-MM-DD HH:MM:SS.mmm+00" has them. */
function hasUtcMillisecondShape(text: string): boolean {
  for (const i of digitPositions) {
    const code = text.charCodeAt(i);
    if (code < 48 || code > 57) return false;
  }
  return text[4] === '-' && text[7] === '-' && text[13] === ':' && text[16] === ':';
}

const digitPositions = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 24, 25];
