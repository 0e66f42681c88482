import { createHash, createHmac } from 'node:crypto';
import { decryptField, encryptField, type FieldContext, readFieldKeyVersion } from '../../crypto/field.ts';
import { deriveKey } from '../../crypto/hkdf.ts';
import { isAppError } from '../../platform/errors.ts';
import type { DataKey, TenantKeyService } from '../keys/tenant-keys.service.ts';
import { recordErrors } from './record-data.ts';

/*
 * Sensitive record fields (collection policies): each top-level value is stored as one
 * `enc:v1:<keyVersion>:<base64>` string, the encryption of its JSON text under the tenant's data key,
 * with tenant, table `records`, column `data.<field>` and the record id as associated data, so a value
 * copied to another record, field or tenant fails to decrypt.
 *
 * Data keys come from the control plane, which must not be queried inside a tenant transaction
 * (PGlite has one connection). So code in a transaction asks a `FieldKeyring` for keys it already
 * holds; a missing one throws `KeyNeeded`, which rolls the transaction back, and `withFieldKeys`
 * fetches the key (cached per node) and runs the work again. A tenant whose collections have no
 * sensitive fields never fetches a key at all.
 */

/** Never leaves `withFieldKeys` (or `openFieldsLoadingKeys`): a key to fetch before trying again. */
class KeyNeeded extends Error {
  readonly version: number | undefined;
  readonly where: { recordId: string; field: string } | undefined;

  constructor(version: number | undefined, where?: { recordId: string; field: string }) {
    super('a data key is needed that is not loaded yet');
    this.version = version;
    this.where = where;
  }
}

export class FieldKeyring {
  readonly tenantId: string;
  readonly #keys: TenantKeyService;
  #current: DataKey | undefined;
  readonly #byVersion = new Map<number, Uint8Array>();

  constructor(keys: TenantKeyService, tenantId: string) {
    this.#keys = keys;
    this.tenantId = tenantId;
  }

  /** The key new values are encrypted with. */
  current(): DataKey {
    if (!this.#current) throw new KeyNeeded(undefined);
    return this.#current;
  }

  keyOf(version: number, where: { recordId: string; field: string }): Uint8Array {
    const bytes = this.#byVersion.get(version);
    if (!bytes) throw new KeyNeeded(version, where);
    return bytes;
  }

  async load(needed: KeyNeeded): Promise<void> {
    if (needed.version === undefined) {
      const key = await this.#keys.getDataKey(this.tenantId);
      this.#current = key;
      this.#byVersion.set(key.version, key.bytes);
      return;
    }
    try {
      this.#byVersion.set(needed.version, (await this.#keys.getDataKey(this.tenantId, needed.version)).bytes);
    } catch (error) {
      // A value naming a key version the tenant never had was not written by us.
      if (isAppError(error) && error.code === 'data_key_missing' && needed.where) {
        throw recordErrors.integrityError(needed.where.recordId, needed.where.field, error);
      }
      throw error;
    }
  }
}

/** How often work may be re-run for another key: one current key plus a few old versions. */
const maxKeyLoads = 4;

/** Runs `work` with a keyring, re-running it (a new transaction) each time it needed a key it lacked. */
export async function withFieldKeys<T>(
  keys: TenantKeyService,
  tenantId: string,
  work: (keyring: FieldKeyring) => Promise<T>,
): Promise<T> {
  const keyring = new FieldKeyring(keys, tenantId);
  for (let loads = 0; ; loads++) {
    try {
      return await work(keyring);
    } catch (error) {
      if (!(error instanceof KeyNeeded) || loads >= maxKeyLoads) throw error;
      await keyring.load(error);
    }
  }
}

function contextOf(tenantId: string, recordId: string, field: string): FieldContext {
  return { tenantId, table: 'records', column: `data.${field}`, rowId: recordId };
}

/** The data as stored: each sensitive field present replaced by its encryption. */
export function sealFields(
  keyring: FieldKeyring,
  recordId: string,
  data: Record<string, unknown>,
  sensitive: readonly string[],
): Record<string, unknown> {
  const present = sensitive.filter((field) => Object.hasOwn(data, field));
  if (present.length === 0) return data;
  const key = keyring.current();
  const sealed = { ...data };
  for (const field of present) {
    sealed[field] = encryptField(
      key,
      JSON.stringify(data[field]),
      contextOf(keyring.tenantId, recordId, field),
    );
  }
  return sealed;
}

/**
 * The data as the API shows it: each sensitive field present decrypted. A value that is not a valid
 * encryption for exactly this tenant, record and field is `integrity_error`, never served as it is.
 */
export function openFields(
  keyring: FieldKeyring,
  recordId: string,
  data: Record<string, unknown>,
  sensitive: readonly string[],
): Record<string, unknown> {
  const present = sensitive.filter((field) => Object.hasOwn(data, field));
  if (present.length === 0) return data;
  const opened = { ...data };
  for (const field of present) {
    const value = data[field];
    const where = { recordId, field };
    if (typeof value !== 'string') throw recordErrors.integrityError(recordId, field);
    let plaintext: string;
    try {
      const version = readFieldKeyVersion(value);
      const key = keyring.keyOf(version, where);
      plaintext = decryptField(() => key, value, contextOf(keyring.tenantId, recordId, field));
    } catch (error) {
      if (error instanceof KeyNeeded) throw error;
      throw recordErrors.integrityError(recordId, field, error);
    }
    opened[field] = JSON.parse(plaintext);
  }
  return opened;
}

/** `openFields` outside a transaction: fetches keys as needed instead of asking for a re-run. */
export async function openFieldsLoadingKeys(
  keyring: FieldKeyring,
  recordId: string,
  data: Record<string, unknown>,
  sensitive: readonly string[],
): Promise<Record<string, unknown>> {
  for (let loads = 0; ; loads++) {
    try {
      return openFields(keyring, recordId, data, sensitive);
    } catch (error) {
      if (!(error instanceof KeyNeeded) || loads >= maxKeyLoads) throw error;
      await keyring.load(error);
    }
  }
}

/**
 * What an idempotent create remembers of its request, to tell a retry from a different request.
 * With sensitive fields it is an HMAC under a key derived from the tenant's data key (HKDF, its own
 * info label), since a plain hash of low-entropy plaintext could be reversed by guessing.
 */
export function hashCreateRequest(
  keyring: FieldKeyring,
  collection: string,
  data: Record<string, unknown>,
  sensitive: readonly string[],
): Buffer {
  const text = JSON.stringify([collection, data]);
  if (!sensitive.some((field) => Object.hasOwn(data, field))) {
    return createHash('sha256').update(text).digest();
  }
  const key = deriveKey(keyring.current().bytes, new Uint8Array(0), 'strongroom/record-request-hash/v1');
  return createHmac('sha256', key).update(text).digest();
}
