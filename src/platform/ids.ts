import { randomUUID } from 'node:crypto';

/** A random (v4) UUID. Tenant ids are UUIDs; their schema and role names derive from them. */
export function newId(): string {
  return randomUUID();
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}
