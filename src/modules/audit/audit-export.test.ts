import { describe, expect, it } from 'vitest';
import type { ChainedAuditEntry } from './audit-chain.ts';
import { csvCell, csvColumns, exportChunk } from './audit-export.ts';

describe('CSV cells of an audit export', () => {
  it('defuses anything a spreadsheet would run, with one leading quote that undoes exactly', () => {
    for (const value of [
      "=cmd|' /C calc'!A0",
      '+1',
      '-1',
      '@SUM(A1)',
      ' =1+1',
      '\u00a0=1',
      '\uff1dfull width',
      '\t=1',
      '\r=1',
      '\n=1',
      "'quoted",
    ]) {
      const cell = csvCell(value);
      const inner = cell.startsWith('"') ? cell.slice(1, -1).replaceAll('""', '"') : cell;
      expect(inner, JSON.stringify(value)).toBe(`'${value}`);
    }
  });

  it('quotes what could end a cell or a row, and leaves plain values alone', () => {
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('a;b')).toBe('"a;b"');
    expect(csvCell('line\nbreak')).toBe('"line\nbreak"');
    expect(csvCell('Mozilla/5.0')).toBe('Mozilla/5.0');
    expect(csvCell(null)).toBe('');
    expect(csvCell(200)).toBe('200');
    expect(csvCell(['data.a', 'data.b'])).toBe('"data.a;data.b"');
  });

  it('writes one row per entry with every column, and JSON Lines with the entry type', () => {
    const entry: ChainedAuditEntry = {
      position: 7,
      at: new Date('2026-11-23T10:00:00.123Z'),
      tenantId: 't',
      actorKind: 'user',
      actorId: 'u',
      apiKeyId: null,
      grantId: null,
      action: 'records.read',
      resourceType: 'records',
      resourceId: 'r',
      outcome: 'allow',
      statusCode: 200,
      errorCode: null,
      requestId: 'q',
      ip: '192.0.2.1',
      userAgent: '=HYPERLINK("x")',
      changes: null,
      prevHash: '0'.repeat(64),
      hash: 'a'.repeat(64),
    };
    const row = exportChunk('csv', [entry]);
    expect(row).toBe(
      `7,2026-11-23T10:00:00.123Z,user,u,,,records.read,records,r,allow,200,,q,192.0.2.1,"'=HYPERLINK(""x"")",,${'0'.repeat(64)},${'a'.repeat(64)}\n`,
    );
    expect(row.split(',').length).toBe(csvColumns.length);
    expect(JSON.parse(exportChunk('jsonl', [entry]))).toMatchObject({
      type: 'entry',
      position: 7,
      at: '2026-11-23T10:00:00.123Z',
      userAgent: '=HYPERLINK("x")',
    });
  });
});
