import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The dependency direction of docs/ARCHITECTURE.md, checked on every import in src/:
 * main, http, cli → modules → ports ← adapters. Nothing imports main; vendor SDKs only in adapters.
 */
const root = resolve(import.meta.dirname, '..');
const src = join(root, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.includes('.test.') ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]!);
}

function layerOf(file: string): string {
  return relative(src, file).split('/')[0]!;
}

const forbidden: Record<string, string[]> = {
  modules: ['http', 'cli', 'adapters', 'main'],
  ports: ['http', 'cli', 'adapters', 'main', 'modules'],
  db: ['http', 'cli', 'adapters', 'main', 'modules'],
  crypto: ['http', 'cli', 'adapters', 'main', 'modules', 'db'],
  platform: ['http', 'cli', 'adapters', 'main', 'modules', 'db', 'crypto'],
  config: ['http', 'cli', 'adapters', 'main', 'modules', 'db'],
  http: ['cli', 'adapters', 'main'],
  adapters: ['http', 'cli', 'main'],
  cli: ['http', 'adapters'],
};

/** SDKs of the things we talk to: only their adapters may import them. */
const vendorSdks = [/^@aws-sdk\//, /^ioredis$/, /^memjs$/, /^selfsigned$/, /^nodemailer$/];

describe('architecture boundaries', () => {
  const files = sourceFiles(src);

  it('finds the source tree', () => {
    expect(files.length).toBeGreaterThan(20);
  });

  it('keeps every import pointing the allowed way', () => {
    const violations: string[] = [];
    for (const file of files) {
      const layer = layerOf(file);
      for (const specifier of importsOf(file)) {
        if (specifier.startsWith('.')) {
          const target = layerOf(resolve(file, '..', specifier));
          if (forbidden[layer]?.includes(target))
            violations.push(`${relative(root, file)} imports ${target}: ${specifier}`);
        } else if (layer !== 'adapters' && vendorSdks.some((sdk) => sdk.test(specifier))) {
          violations.push(`${relative(root, file)} imports the vendor SDK ${specifier} outside adapters/`);
        }
      }
    }
    expect(violations).toEqual([]);
  });
});
