import { type Compilable, CompiledQuery } from 'kysely';
import type { AnyKysely } from './database.ts';
import { boundSchemaOf } from './with-tenant.ts';

/**
 * Hot statements of the request path, compiled once per tenant schema. Building a query with Kysely,
 * qualifying every table with the schema and compiling it costs the server more CPU than Postgres
 * spends running the prepared statement (db/prepared-statements.ts); a statement whose shape never
 * changes is compiled once with placeholders and then run with each call's values.
 *
 * `build` gets placeholders in place of the values and must use each one directly as a value
 * (`where('id', '=', p.id)`, `sql\`${p.data}::jsonb\``): never transform one, never branch on one.
 * The first compilation checks that every placeholder reached the statement as a parameter. Every
 * call passes the same keys (the first call's are the placeholders).
 */
export interface CachedStatement<P extends Record<string, unknown>, Row> {
  /**
   * Runs the statement on `db` with `params`; the rows it returned. Compiled once per schema for a
   * handle from `withTenant`, every time for any other.
   */
  (db: AnyKysely, params: P): Promise<Row[]>;
}

class Placeholder {
  readonly key: string;
  constructor(key: string) {
    this.key = key;
  }
}

type Slot = { key: string } | { value: unknown };

interface Compiled {
  sql: string;
  slots: readonly Slot[];
}

/** Schemas whose compiled form each statement keeps; the whole map is dropped past this (cheap to rebuild). */
const maxSchemas = 2_000;

export function cachedStatement<P extends Record<string, unknown>, Row>(
  build: (db: AnyKysely, params: P) => Compilable<Row>,
): CachedStatement<P, Row> {
  const bySchema = new Map<string, Compiled>();
  const compile = (db: AnyKysely, keys: readonly string[]): Compiled => {
    const placeholders = Object.fromEntries(keys.map((key) => [key, new Placeholder(key)])) as P;
    const compiled = build(db, placeholders).compile();
    const slots = compiled.parameters.map(
      (value): Slot => (value instanceof Placeholder ? { key: value.key } : { value }),
    );
    const used = new Set(slots.flatMap((slot) => ('key' in slot ? [slot.key] : [])));
    const lost = keys.filter((key) => !used.has(key));
    if (lost.length > 0)
      throw new Error(`cached statement: ${lost.join(', ')} did not reach it as a parameter`);
    return { sql: compiled.sql, slots };
  };
  return async (db, params) => {
    const schema = boundSchemaOf(db);
    let compiled = schema === undefined ? undefined : bySchema.get(schema);
    if (!compiled) {
      compiled = compile(db, Object.keys(params));
      if (schema !== undefined) {
        if (bySchema.size >= maxSchemas) bySchema.clear();
        bySchema.set(schema, compiled);
      }
    }
    const values = compiled.slots.map((slot) => ('key' in slot ? params[slot.key] : slot.value));
    const result = await db.executeQuery<Row>(CompiledQuery.raw(compiled.sql, values));
    return result.rows;
  };
}
