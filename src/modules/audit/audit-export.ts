import type { StoredCheckpoint } from './audit.repository.ts';
import type { ChainedAuditEntry } from './audit-chain.ts';

/** The columns of a CSV export, in order (the header row). */
export const csvColumns = [
  'position',
  'at',
  'actorKind',
  'actorId',
  'apiKeyId',
  'grantId',
  'action',
  'resourceType',
  'resourceId',
  'outcome',
  'statusCode',
  'errorCode',
  'requestId',
  'ip',
  'userAgent',
  'changes',
  'prevHash',
  'hash',
] as const satisfies ReadonlyArray<keyof ChainedAuditEntry>;

/**
 * What makes a spreadsheet read a cell as a formula (or as a command, through DDE): `=` `+` `-` `@`
 * (and their full-width forms) first, possibly after white space, or a tab, carriage return or line
 * feed first. `'` first is escaped too, so the escape can always be undone: a cell that starts with
 * `'` had one added, and only one.
 */
const formulaStart = /^(?:[\s\u00a0\u3000]*[=+\-@\uff1d\uff0b\uff0d\uff20]|[\t\r\n'])/;

/**
 * One CSV cell (RFC 4180). Values are client-controlled in part (a user agent, a record's field
 * names), so a value a spreadsheet would run as a formula gets a leading `'`, and anything that could
 * end the cell or the row (`"`, `,`, `;` for locales that split on it, a line break) is quoted.
 */
export function csvCell(value: unknown): string {
  const text =
    value === null || value === undefined ? '' : Array.isArray(value) ? value.join(';') : String(value);
  const safe = formulaStart.test(text) ? `'${text}` : text;
  return /[",;\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

/** One line of a JSON Lines export: the entry with its place in the chain. */
export function exportLine(entry: ChainedAuditEntry): Record<string, unknown> {
  return { type: 'entry', ...entry, at: entry.at.toISOString() };
}

/** A page of entries as one chunk of the file (one write per page, not per entry). */
export function exportChunk(format: 'jsonl' | 'csv', entries: readonly ChainedAuditEntry[]): string {
  let chunk = '';
  for (const entry of entries) {
    if (format === 'jsonl') chunk += `${JSON.stringify(exportLine(entry))}\n`;
    else {
      const row = entry as unknown as Record<string, unknown>;
      chunk += `${csvColumns.map((column) => csvCell(column === 'at' ? entry.at.toISOString() : row[column])).join(',')}\n`;
    }
  }
  return chunk;
}

export const csvHeader = `${csvColumns.join(',')}\n`;

/**
 * The chain proof an export carries: the latest signed checkpoint at or before the head it was
 * exported through, and the key to check it with. The signature covers (tenant, position, head hash,
 * time): `checkpointMessage` in audit-signer.ts.
 */
export function exportProof(
  tenantId: string,
  head: { position: number; hash: string },
  checkpoint: StoredCheckpoint | undefined,
  publicKey: { keyId: string; publicKeyPem: string },
  filtered: boolean,
) {
  return {
    type: 'checkpoint' as const,
    tenantId,
    /** The chain's head when the export began: the file ends there. */
    head: head.position === 0 ? null : head,
    /** A filtered export holds some entries only: each proves its own hash, not the chain's continuity. */
    filtered,
    checkpoint: checkpoint ? { ...checkpoint, at: checkpoint.at.toISOString() } : null,
    publicKey,
  };
}
