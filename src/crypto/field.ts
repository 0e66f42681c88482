import { aesKeySizeBytes, assertAesKey, encodeAad, openAesGcm, sealAesGcm } from './aead.ts';
import { cryptoErrors } from './crypto.errors.ts';
import { deriveKey } from './hkdf.ts';

/*
 * Sensitive record fields are stored as `enc:v1:<keyVersion>:<base64(nonce ‖ ciphertext ‖ tag)>`.
 * The key version is in the clear so a reader knows which tenant DEK to unwrap and a rotation job can
 * find values still under an old version; it is also authenticated, as part of the associated data.
 */

const formatLabel = 'enc:v1';

/**
 * Versioned HKDF info (RFC 5869 §3.2): the field key is independent of every other key derived from
 * the same DEK (stream objects use 'strongroom/stream/v1'), so no ciphertext of one kind can be
 * presented as the other.
 */
const fieldKeyInfo = 'strongroom/field/v1';

/**
 * Empty salt: the DEK is already 32 uniformly random bytes, for which RFC 5869 §3.1 allows omitting
 * the salt (it is then HashLen zero bytes). Per-message uniqueness comes from the random GCM nonce.
 */
const fieldKeySalt = new Uint8Array(0);

/** Canonical form only: version without leading zeros, standard base64 with padding. */
const envelopePattern = /^enc:v1:(0|[1-9][0-9]{0,15}):([A-Za-z0-9+/]+={0,2})$/;

/** Where a value lives. All four parts are authenticated, so a value copied elsewhere fails to decrypt. */
export interface FieldContext {
  tenantId: string;
  table: string;
  column: string;
  rowId: string;
}

/** A tenant data key (32 bytes, unwrapped) and its version. */
export interface FieldKey {
  version: number;
  bytes: Uint8Array;
}

interface Envelope {
  keyVersion: number;
  sealed: Buffer;
}

/**
 * Encrypts one field value for storage. `plaintext` is encoded as UTF-8, so a lone UTF-16 surrogate
 * becomes U+FFFD, exactly as it would when stored as Postgres text.
 */
export function encryptField(key: FieldKey, plaintext: string, context: FieldContext): string {
  assertKeyVersion(key.version);
  const fieldKey = deriveFieldKey(key.bytes);
  const sealed = sealAesGcm(fieldKey, Buffer.from(plaintext, 'utf8'), encodeFieldAad(key.version, context));
  return `${formatLabel}:${key.version}:${sealed.toString('base64')}`;
}

/**
 * Decrypts a value made by `encryptField` for the same context. `lookupKey` returns the tenant's
 * unwrapped DEK for a version, or undefined if there is none. Throws `unknown_key_version` when the
 * lookup returns undefined, and `decryption_failed` when the value is malformed, was tampered with,
 * or belongs to another tenant, table, column or row.
 */
export function decryptField(
  lookupKey: (version: number) => Uint8Array | undefined,
  value: string,
  context: FieldContext,
): string {
  const envelope = parseEnvelope(value);
  if (envelope === undefined) throw cryptoErrors.decryptionFailed();
  const keyBytes = lookupKey(envelope.keyVersion);
  if (keyBytes === undefined) throw cryptoErrors.unknownKeyVersion(envelope.keyVersion);
  const fieldKey = deriveFieldKey(keyBytes);
  const aad = encodeFieldAad(envelope.keyVersion, context);
  return openAesGcm(fieldKey, envelope.sealed, aad).toString('utf8');
}

/**
 * Whether `value` has the shape of an encrypted field (not whether it decrypts). Decide what to
 * encrypt from the schema, not from this: a user could type a string of this shape.
 */
export function isEncryptedField(value: unknown): boolean {
  return typeof value === 'string' && parseEnvelope(value) !== undefined;
}

/** The key version an encrypted field was written with (rotation jobs); malformed → `decryption_failed`. */
export function readFieldKeyVersion(value: string): number {
  const envelope = parseEnvelope(value);
  if (envelope === undefined) throw cryptoErrors.decryptionFailed();
  return envelope.keyVersion;
}

function parseEnvelope(value: string): Envelope | undefined {
  const match = envelopePattern.exec(value);
  if (match === null) return undefined;
  const keyVersion = Number(match[1]);
  const encoded = match[2]!;
  const sealed = Buffer.from(encoded, 'base64');
  // Node's base64 decoder ignores stray bits and bad padding; requiring the canonical encoding makes
  // the envelope non-malleable (one value, one spelling).
  if (!Number.isSafeInteger(keyVersion) || sealed.toString('base64') !== encoded) return undefined;
  return { keyVersion, sealed };
}

function deriveFieldKey(dataKey: Uint8Array): Buffer {
  assertAesKey(dataKey, 'field data key');
  return deriveKey(dataKey, fieldKeySalt, fieldKeyInfo, aesKeySizeBytes);
}

/**
 * Associated data: format, key version, tenant, table, column and row, each length-prefixed by
 * `encodeAad` so no two different contexts encode alike (joining with ':' would let
 * `table 'a:b', column 'c'` equal `table 'a', column 'b:c'`).
 */
function encodeFieldAad(keyVersion: number, context: FieldContext): Buffer {
  return encodeAad([
    formatLabel,
    String(keyVersion),
    context.tenantId,
    context.table,
    context.column,
    context.rowId,
  ]);
}

function assertKeyVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 0)
    throw new Error('key version must be a non-negative integer');
}
