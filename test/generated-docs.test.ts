import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  renderAccessMatrix,
  renderEnvExample,
  renderErrorCatalogue,
  renderStaffPermissionTable,
  renderSupportGrantTable,
} from '../scripts/render-docs.ts';

const root = resolve(import.meta.dirname, '..');

describe('generated docs are current (run `npm run docs` after changing errors or config)', () => {
  it('docs/errors.md lists every error code', async () => {
    const catalogue = await renderErrorCatalogue();
    expect(catalogue).toContain('`tenant_context_missing`');
    expect(readFileSync(resolve(root, 'docs/errors.md'), 'utf8')).toBe(catalogue);
  });

  it('docs/security.md quotes the staff permission table as it is in code', () => {
    expect(readFileSync(resolve(root, 'docs/security.md'), 'utf8')).toContain(renderStaffPermissionTable());
  });

  it('docs/security.md quotes the tenant allow matrix as it is in code', () => {
    expect(readFileSync(resolve(root, 'docs/security.md'), 'utf8')).toContain(renderAccessMatrix());
  });

  it('docs/security.md quotes what a support grant opens as it is in code', () => {
    expect(readFileSync(resolve(root, 'docs/security.md'), 'utf8')).toContain(renderSupportGrantTable());
  });

  it('.env.example lists every variable', () => {
    expect(readFileSync(resolve(root, '.env.example'), 'utf8')).toBe(renderEnvExample());
  });
});
