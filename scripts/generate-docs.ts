// Writes the generated reference docs from the code, so they cannot drift:
//   docs/errors.md   every error code, its kind, HTTP status and meaning
//   .env.example     every environment variable the config schema reads
// `test/generated-docs.test.ts` fails when a committed file differs from what this prints.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { renderEnvExample, renderErrorCatalogue } from './render-docs.ts';

const root = resolve(import.meta.dirname, '..');
writeFileSync(resolve(root, 'docs/errors.md'), await renderErrorCatalogue());
writeFileSync(resolve(root, '.env.example'), renderEnvExample());
console.log('wrote docs/errors.md and .env.example');
