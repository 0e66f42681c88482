import {
  decryptField,
  encryptField,
  type FieldContext,
  isEncryptedField,
  readFieldKeyVersion,
} from '../../crypto/field.ts';
import type { DataKey } from '../keys/tenant-keys.service.ts';

/**
 * Values sealed with `encryptField` are bound to their tenant, table, column and row (associated
 * data). A restore into a new tenant must therefore re-seal them under the new tenant's key and id,
 * or they could never be opened there. These are all the places tenant rows hold such values; a new
 * one must be added here (and to the restore test in backups.int.test.ts):
 * - `records.data.<field>` for a collection's sensitive fields (records/sensitive-fields.ts);
 * - `users.mfa_secret` (identity/mfa.service.ts).
 * A value that does not open with the source tenant's keys in exactly its place is left as it is: it
 * is either not a sealed value at all (a user may type that shape) or already damaged, and the
 * services report it as an integrity error on read, as they would have before.
 */
export class SealedValueRekeyer {
  readonly #from: { tenantId: string; keys: ReadonlyMap<number, DataKey> };
  readonly #to: { tenantId: string; key: DataKey };

  constructor(
    from: { tenantId: string; keys: ReadonlyMap<number, DataKey> },
    to: { tenantId: string; key: DataKey },
  ) {
    this.#from = from;
    this.#to = to;
  }

  /** The row with its sealed values re-sealed for the new tenant (the same object if none). */
  rekeyRow(table: string, row: Record<string, unknown> | null): Record<string, unknown> | null {
    if (!row || typeof row.id !== 'string') return row;
    const rowId = row.id;
    if (table === 'users' && isEncryptedField(row.mfa_secret)) {
      return { ...row, mfa_secret: this.#rekey(row.mfa_secret as string, 'users', 'mfa_secret', rowId) };
    }
    if (table === 'records' && row.data && typeof row.data === 'object') {
      const data = row.data as Record<string, unknown>;
      let changed: Record<string, unknown> | undefined;
      for (const [field, value] of Object.entries(data)) {
        if (!isEncryptedField(value)) continue;
        changed ??= { ...data };
        changed[field] = this.#rekey(value as string, 'records', `data.${field}`, rowId);
      }
      return changed ? { ...row, data: changed } : row;
    }
    return row;
  }

  #rekey(value: string, table: string, column: string, rowId: string): string {
    const from: FieldContext = { tenantId: this.#from.tenantId, table, column, rowId };
    let plaintext: string;
    try {
      const key = this.#from.keys.get(readFieldKeyVersion(value));
      plaintext = decryptField(() => key?.bytes, value, from);
    } catch {
      return value;
    }
    return encryptField(this.#to.key, plaintext, { tenantId: this.#to.tenantId, table, column, rowId });
  }
}
