import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { LRUCache } from 'lru-cache';
import { encodeAad } from '../../crypto/aead.ts';
import type { ControlTables } from '../../db/control-tables.ts';
import { isAppError } from '../../platform/errors.ts';
import type { KeyProvider } from './key-provider.port.ts';
import { keyErrors } from './keys.errors.ts';
import type { TenantKeysRepository, WrappedDataKeyRow } from './tenant-keys.repository.ts';

export interface DataKey {
  readonly version: number;
  readonly bytes: Buffer;
}

export interface RotationProgress {
  readonly done: number;
  readonly total: number;
}

/** The canary sealed under the master key; opening it proves the configured key is the right one. */
const keyCheckPlaintext = Buffer.from('strongroom master key check v1');
const keyCheckAad = encodeAad(['strongroom/key-check/v1']);

/**
 * Per-tenant data keys (DEKs): 32 random bytes each, stored only wrapped by the master key, with the
 * tenant id and key version bound in as associated data so a wrapped key copied onto another tenant's
 * row does not unwrap. Unwrapped keys live only in a bounded in-memory cache with a TTL, never in logs,
 * the shared cache or on disk.
 */
export class TenantKeyService {
  readonly #repository: TenantKeysRepository;
  readonly #provider: KeyProvider;
  readonly #cache: LRUCache<string, DataKey>;

  constructor(deps: {
    repository: TenantKeysRepository;
    provider: KeyProvider;
    cacheSize?: number;
    cacheTtlMs?: number;
  }) {
    this.#repository = deps.repository;
    this.#provider = deps.provider;
    // Bounded so the cost of a request never grows with the number of tenants; the TTL bounds how
    // long a node can still use a key after the tenant was deleted elsewhere.
    this.#cache = new LRUCache({ max: deps.cacheSize ?? 10_000, ttl: deps.cacheTtlMs ?? 5 * 60_000 });
  }

  get currentKekId(): string {
    return this.#provider.currentKekId;
  }

  /**
   * Creates version 1 of a new tenant's key, inside the tenant-creation transaction, and returns it
   * (a restore re-encrypts sensitive values with it before that transaction commits).
   */
  async createDataKey(control: Kysely<ControlTables>, tenantId: string): Promise<DataKey> {
    const version = 1;
    const bytes = randomBytes(32);
    const wrapped = await this.#provider.wrap(bytes, dataKeyAad(tenantId, version));
    await this.#repository.insert(
      { tenantId, version, kekId: wrapped.kekId, wrapped: Buffer.from(wrapped.ciphertext) },
      control,
    );
    return { version, bytes };
  }

  /** The tenant's key of `version`, or its newest key; rejects with `data_key_missing` if destroyed. */
  async getDataKey(tenantId: string, version?: number): Promise<DataKey> {
    const cacheKey = `${tenantId}:${version ?? 'current'}`;
    const cached = this.#cache.get(cacheKey);
    if (cached) return cached;
    const row = await this.#repository.find(tenantId, version);
    if (!row) throw keyErrors.dataKeyMissing();
    const key: DataKey = { version: row.version, bytes: await this.#unwrapRow(row) };
    this.#cache.set(cacheKey, key);
    if (version === undefined) this.#cache.set(`${tenantId}:${row.version}`, key);
    return key;
  }

  /**
   * Destroys every version of the tenant's key, inside the tenant-deletion transaction: whatever was
   * encrypted under it (objects, backups, exports) becomes unreadable. That is the erasure guarantee.
   */
  async destroyDataKeys(control: Kysely<ControlTables>, tenantId: string): Promise<void> {
    await this.#repository.deleteForTenant(tenantId, control);
    this.forget(tenantId);
  }

  /** Drops a tenant's keys from this node's memory (after deletion). */
  forget(tenantId: string): void {
    for (const key of this.#cache.keys()) if (key.startsWith(`${tenantId}:`)) this.#cache.delete(key);
  }

  /**
   * Checks at start-up that the configured master key is the one the database was set up with, by
   * opening the canary; seals a canary on first start. A wrong key is refused before anything runs.
   */
  /**
   * Wraps a key of the platform's own (a control-plane backup's file key) with the master key, bound
   * to `aad`: only the master key opens what it seals, as with tenant data keys.
   */
  async wrapWithMasterKey(
    plaintext: Uint8Array,
    aad: Uint8Array,
  ): Promise<{ kekId: string; ciphertext: Buffer }> {
    const wrapped = await this.#provider.wrap(plaintext, aad);
    return { kekId: wrapped.kekId, ciphertext: Buffer.from(wrapped.ciphertext) };
  }

  /** Opens what `wrapWithMasterKey` sealed; `master_key_mismatch` when the configured key cannot. */
  async unwrapWithMasterKey(
    wrapped: { kekId: string; ciphertext: Uint8Array },
    aad: Uint8Array,
  ): Promise<Buffer> {
    if (!this.#provider.canUnwrap(wrapped.kekId))
      throw keyErrors.masterKeyMismatch(wrapped.kekId, this.#provider.currentKekId);
    try {
      return await this.#provider.unwrap(wrapped, aad);
    } catch (error) {
      if (isAppError(error)) throw keyErrors.masterKeyMismatch(wrapped.kekId, this.#provider.currentKekId);
      throw error;
    }
  }

  async verifyMasterKey(): Promise<void> {
    const check = await this.#repository.findKeyCheck();
    if (!check) {
      const wrapped = await this.#provider.wrap(keyCheckPlaintext, keyCheckAad);
      await this.#repository.upsertKeyCheck(wrapped.kekId, Buffer.from(wrapped.ciphertext));
      return;
    }
    if (!this.#provider.canUnwrap(check.kekId)) {
      throw keyErrors.masterKeyMismatch(check.kekId, this.#provider.currentKekId);
    }
    try {
      await this.#provider.unwrap({ kekId: check.kekId, ciphertext: check.sealed }, keyCheckAad);
    } catch (error) {
      if (isAppError(error)) throw keyErrors.masterKeyMismatch(check.kekId, this.#provider.currentKekId);
      throw error;
    }
  }

  /**
   * Rewraps every data key still wrapped by a previous master key with the current one. Online (each
   * key is one compare-and-set update; readers unwrap either version meanwhile) and resumable (a
   * restart continues with the keys not yet rewrapped). Finally the canary moves to the new key.
   */
  async rotateMasterKey(onProgress?: (progress: RotationProgress) => void): Promise<RotationProgress> {
    const kekId = this.#provider.currentKekId;
    const total = await this.#repository.countNotWrappedBy(kekId);
    let done = 0;
    onProgress?.({ done, total });
    for (;;) {
      const page = await this.#repository.listNotWrappedBy(kekId, 100);
      if (page.length === 0) break;
      for (const row of page) {
        const bytes = await this.#unwrapRow(row);
        const wrapped = await this.#provider.wrap(bytes, dataKeyAad(row.tenantId, row.version));
        if (await this.#repository.replaceWrapping(row, wrapped.kekId, Buffer.from(wrapped.ciphertext)))
          done++;
        onProgress?.({ done, total });
      }
    }
    const wrapped = await this.#provider.wrap(keyCheckPlaintext, keyCheckAad);
    await this.#repository.upsertKeyCheck(wrapped.kekId, Buffer.from(wrapped.ciphertext));
    return { done, total };
  }

  async #unwrapRow(row: WrappedDataKeyRow): Promise<Buffer> {
    return this.#provider.unwrap(
      { kekId: row.kekId, ciphertext: row.wrapped },
      dataKeyAad(row.tenantId, row.version),
    );
  }
}

/** Binds a wrapped key to its tenant and version (length-prefixed, so parts cannot be shifted). */
function dataKeyAad(tenantId: string, version: number): Buffer {
  return encodeAad(['strongroom/dek/v1', tenantId, String(version)]);
}
