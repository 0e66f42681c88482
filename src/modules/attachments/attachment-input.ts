import { defineError } from '../../platform/errors.ts';

export const attachmentErrors = {
  invalidFilename: defineError(
    'invalid_filename',
    'invalid',
    'The filename is empty, longer than 255 bytes of UTF-8, or holds a path separator, a control character or a dot-only name.',
    (reason: string) => ({ message: `invalid filename: ${reason}` }),
  ),
  invalidContentType: defineError(
    'invalid_content_type',
    'invalid',
    'The Content-Type is not a media type (type/subtype with optional parameters, at most 255 characters).',
  ),
  tooLarge: defineError(
    'attachment_too_large',
    'too_large',
    'The attachment is larger than the configured limit (STRONGROOM_ATTACHMENT_MAX_BYTES); nothing was kept.',
    (limitBytes: number) => ({
      message: `the attachment exceeds ${limitBytes} bytes; nothing was kept`,
      details: { limitBytes },
    }),
  ),
  uploadIncomplete: defineError(
    'upload_incomplete',
    'invalid',
    'The upload ended before its body was complete (the client aborted or the connection broke); nothing was kept.',
  ),
  unknownRecord: defineError('unknown_record', 'invalid', 'recordId names no record of this project.'),
  rangeNotSatisfiable: defineError(
    'range_not_satisfiable',
    'range_not_satisfiable',
    'The Range is malformed, asks for more than one range, or lies outside the file (answered with 416 and Content-Range: bytes */size).',
    (sizeBytes: number, reason: string) => ({
      message: `range not satisfiable: ${reason} (the file has ${sizeBytes} bytes)`,
      details: { sizeBytes },
    }),
  ),
  integrity: defineError(
    'integrity_error',
    'integrity',
    'Stored data (an encrypted record field or attachment) failed authentication or its checksum: corrupted, tampered with, moved or missing. It is never served; the failure is logged with the request id.',
  ),
};

const maxFilenameBytes = 255;

/**
 * A filename as the client gave it, for `Content-Disposition` on download only: it never becomes
 * part of an object key. Refused rather than silently cleaned, so what is stored is what was sent.
 */
export function acceptFilename(raw: string | undefined): string {
  if (raw === undefined) return 'attachment';
  const name = raw.normalize('NFC');
  if (name.length === 0) throw attachmentErrors.invalidFilename('empty');
  if (Buffer.byteLength(name, 'utf8') > maxFilenameBytes) {
    throw attachmentErrors.invalidFilename(`longer than ${maxFilenameBytes} bytes of UTF-8`);
  }
  // \p{Cc} covers NUL and every C0/C1 control; bidi overrides would let a name lie about its extension.
  if (/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u.test(name)) {
    throw attachmentErrors.invalidFilename('control characters are not allowed');
  }
  if (/[/\\]/.test(name)) throw attachmentErrors.invalidFilename('path separators are not allowed');
  if (/^\.+$/.test(name)) throw attachmentErrors.invalidFilename('a name of dots only is not allowed');
  if (name.trim() !== name)
    throw attachmentErrors.invalidFilename('leading or trailing spaces are not allowed');
  return name;
}

/** The filename header carries percent-encoded UTF-8 (as `encodeURIComponent` makes it). */
export function decodeFilenameHeader(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  try {
    return decodeURIComponent(raw);
  } catch {
    throw attachmentErrors.invalidFilename('bad percent-encoding');
  }
}

const token = "[A-Za-z0-9!#$&^_.+'*`|~-]+";
const mediaTypePattern = new RegExp(
  `^${token}/${token}(\\s*;\\s*${token}=(${token}|"[^"\\\\\\p{Cc}]*"))*$`,
  'u',
);

/** RFC 9110 media type; type and subtype lower-cased. Missing means application/octet-stream. */
export function acceptContentType(raw: string | undefined): string {
  if (raw === undefined || raw === '') return 'application/octet-stream';
  const value = raw.trim();
  if (value.length > 255 || !mediaTypePattern.test(value)) throw attachmentErrors.invalidContentType();
  const separator = value.indexOf(';');
  return separator === -1
    ? value.toLowerCase()
    : value.slice(0, separator).trim().toLowerCase() + value.slice(separator);
}

/** Inclusive plaintext byte offsets. */
export interface PlainRange {
  start: number;
  end: number;
}

/**
 * One `bytes=` range (RFC 9110 §14.1.2): `a-b`, `a-` or the suffix `-n`, clipped to the file. An
 * absent header means the whole file; any other unit is ignored, as the RFC asks. Several ranges,
 * a malformed range or one starting past the end is 416.
 */
export function parseRange(header: string | undefined, sizeBytes: number): PlainRange | undefined {
  if (header === undefined) return undefined;
  const trimmed = header.trim();
  if (!/^bytes\s*=/i.test(trimmed)) return undefined;
  const spec = trimmed.replace(/^bytes\s*=\s*/i, '');
  const refuse = (reason: string) => attachmentErrors.rangeNotSatisfiable(sizeBytes, reason);
  if (spec.includes(',')) throw refuse('one range per request');
  const match = /^(\d{0,15})-(\d{0,15})$/.exec(spec);
  if (!match || (match[1] === '' && match[2] === '')) throw refuse('expected bytes=start-end');
  const [, first = '', last = ''] = match;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || sizeBytes === 0) throw refuse('an empty suffix range');
    return { start: Math.max(0, sizeBytes - suffix), end: sizeBytes - 1 };
  }
  const start = Number(first);
  const end = last === '' ? sizeBytes - 1 : Math.min(Number(last), sizeBytes - 1);
  if (last !== '' && Number(last) < start) throw refuse('the range ends before it starts');
  if (start >= sizeBytes) throw refuse('the range starts past the end');
  return { start, end };
}

/**
 * `Content-Disposition: attachment` with an ASCII fallback and the exact name as RFC 8187
 * `filename*`, so no byte of a stored name can break out of the header.
 */
export function contentDisposition(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const encoded = encodeURIComponent(filename).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
