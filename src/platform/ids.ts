import { randomBytes, randomUUID } from 'node:crypto';

/** A random (v4) UUID. Tenant ids are UUIDs; their schema and role names derive from them. */
export function newId(): string {
  return randomUUID();
}

/**
 * A time-ordered (v7, RFC 9562 §5.7) UUID: 48 bits of Unix milliseconds, then 74 random bits. Object
 * keys use it so a sweep can tell from the key alone when its upload began.
 */
export function newTimeOrderedId(nowMs: number = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(nowMs, 0, 6);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The milliseconds a v7 UUID was made at; undefined for any other string. */
export function timeOfOrderedId(id: string): number | undefined {
  if (!isUuid(id) || id[14] !== '7') return undefined;
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}
