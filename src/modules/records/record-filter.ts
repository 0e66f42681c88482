import { defineError } from '../../platform/errors.ts';

/**
 * The allowlisted filter grammar for listing records: `field:op:value`, where `field` is a top-level
 * data field (`[A-Za-z_][A-Za-z0-9_]{0,62}`), `op` one of eq, ne, lt, lte, gt, gte, and `value` a JSON
 * literal (`"Paris"`, `10`, `true`, `null`). Nothing of it becomes SQL text: field and value are bound
 * parameters of a fixed expression. Range operators compare only values of the same JSON type.
 */
export type FilterOp = 'eq' | 'ne' | 'lt' | 'lte' | 'gt' | 'gte';

export interface RecordFilter {
  field: string;
  op: FilterOp;
  /** The value as JSON text, for a `::jsonb` parameter. */
  json: string;
}

export const maxFilters = 5;

export const filterErrors = {
  invalidFilter: defineError(
    'invalid_filter',
    'invalid',
    'A filter is field:op:value with a top-level field name, op one of eq, ne, lt, lte, gt, gte, and a JSON value (at most 5 filters).',
    (reason: string) => ({ message: `invalid filter: ${reason}` }),
  ),
  notFilterable: defineError(
    'field_not_filterable',
    'invalid',
    'The field is marked sensitive in the collection policy (stored encrypted), so it cannot be filtered on. Without a collection, a field sensitive in any collection of the project.',
    (field: string) => ({
      message: `field ${field} is sensitive (stored encrypted) and cannot be filtered on`,
      details: { field },
    }),
  ),
  notSortable: defineError(
    'field_not_sortable',
    'invalid',
    'The field is marked sensitive in the collection policy (stored encrypted), so it cannot be sorted on. Without a collection, a field sensitive in any collection of the project.',
    (field: string) => ({
      message: `field ${field} is sensitive (stored encrypted) and cannot be sorted on`,
      details: { field },
    }),
  ),
};

/** A top-level data field as filters, sorts and collection policies name it. */
export const fieldNamePattern = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

const filterPattern = /^([A-Za-z_][A-Za-z0-9_]{0,62}):(eq|ne|lt|lte|gt|gte):([\s\S]{1,1000})$/;

export function parseFilters(raw: string | string[] | undefined): RecordFilter[] {
  if (raw === undefined) return [];
  const list = Array.isArray(raw) ? raw : [raw];
  if (list.length > maxFilters) throw filterErrors.invalidFilter(`at most ${maxFilters} filters`);
  return list.map((text) => {
    const match = filterPattern.exec(text);
    if (!match) throw filterErrors.invalidFilter('expected field:op:value');
    const [, field, op, valueText] = match;
    let value: unknown;
    try {
      value = JSON.parse(valueText!);
    } catch {
      throw filterErrors.invalidFilter('the value is not a JSON literal (quote strings: "Paris")');
    }
    if (typeof value === 'object' && value !== null) {
      throw filterErrors.invalidFilter('the value must be a string, number, boolean or null');
    }
    if (typeof value === 'string' && (value.includes('\u0000') || !value.isWellFormed())) {
      throw filterErrors.invalidFilter('the value holds text that cannot be stored');
    }
    const isRange = op !== 'eq' && op !== 'ne';
    if (isRange && (value === null || typeof value === 'boolean')) {
      throw filterErrors.invalidFilter(`${op} compares numbers or strings`);
    }
    return { field: field!, op: op as FilterOp, json: JSON.stringify(value) };
  });
}
