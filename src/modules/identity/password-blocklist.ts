import { readFileSync } from 'node:fs';

/**
 * Common passwords (lower-cased, one a line, 8 characters or more: shorter ones fail the length rule
 * anyway), shipped with the package in common-passwords.txt and read once, on first use.
 */
let common: Set<string> | undefined;

export function isCommonPassword(lowercased: string): boolean {
  common ??= new Set(
    readFileSync(new URL('./common-passwords.txt', import.meta.url), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.length > 0 && !line.startsWith('#')),
  );
  return common.has(lowercased);
}
