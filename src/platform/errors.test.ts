import { describe, expect, it } from 'vitest';
import { defineError } from './errors.ts';

const refused = defineError('test_refused', 'forbidden', 'A refusal, for this test.');
const broken = defineError('test_broken', 'internal', 'A fault, for this test.');

describe('AppError', () => {
  it('captures no stack for a refusal of the request, and keeps it for a fault', () => {
    const refusal = refused();
    expect(refusal.stack?.split('\n')).toEqual(['AppError: A refusal, for this test.']);
    expect(broken().stack).toMatch(/\n\s+at /);
    // The global limit is left as it was.
    expect(Error.stackTraceLimit).toBeGreaterThan(0);
    expect(new Error('plain').stack).toMatch(/\n\s+at /);
  });
});
