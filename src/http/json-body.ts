/**
 * The first key that occurs twice in one object of `json`, or undefined. `JSON.parse` (and so every
 * JSON body parser) silently keeps the last of two equal keys, so `{"role":"viewer","role":"admin"}`
 * means whatever the last layer to look at it decides; we refuse such bodies instead.
 *
 * Expects text that already parsed as JSON: it only tracks where keys are, in one pass without
 * recursion (nesting depth costs one array slot per level), skipping string contents with `indexOf`.
 * Keys are compared decoded, so `"a"` and `"\u0061"` are the same key.
 */
export function findDuplicateKey(json: string): string | undefined {
  // One slot per open container: null for an array; for an object undefined (no key yet), its one
  // key, or a Set once it has two (most objects never need the Set).
  const open: Array<null | undefined | string | Set<string>> = [];
  let expectKey = false;
  let i = 0;
  while (i < json.length) {
    const c = json.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let end = json.indexOf('"', i + 1);
      while (isEscaped(json, end)) end = json.indexOf('"', end + 1);
      if (expectKey) {
        const raw = json.slice(i + 1, end);
        const key: string = raw.includes('\\') ? JSON.parse(json.slice(i, end + 1)) : raw;
        const top = open.length - 1;
        const seen = open[top];
        if (seen === undefined) open[top] = key;
        else if (typeof seen === 'string') {
          if (seen === key) return key;
          open[top] = new Set([seen, key]);
        } else if (seen instanceof Set) {
          if (seen.has(key)) return key;
          seen.add(key);
        }
        expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (c === 0x7b /* { */) {
      open.push(undefined);
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      open.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = open[open.length - 1] !== null;
    }
    i++;
  }
  return undefined;
}

/** Whether the quote at `at` is preceded by an odd number of backslashes. */
function isEscaped(text: string, at: number): boolean {
  let backslashes = 0;
  for (let j = at - 1; j >= 0 && text.charCodeAt(j) === 0x5c; j--) backslashes++;
  return backslashes % 2 === 1;
}
