import { defineConfig } from 'vitest/config';

// Two projects: fast unit tests (pure code), and integration tests that touch PGlite, a Postgres
// server, Redis, memcached, s3rver. Integration suites against a server that is not present skip with
// a reason on a plain `npm test`; CI sets STRONGROOM_TEST_REQUIRE_SERVICES=1 and any skip fails it.
export default defineConfig({
  test: {
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: 'test-results/vitest.json' }]]
      : ['default'],
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 },
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ['**/*.int.test.ts', 'node_modules/**'],
        },
      },
      {
        test: {
          name: 'integration',
          // Runs after the unit tests, with its own worker limit.
          sequence: { groupOrder: 1 },
          include: ['src/**/*.int.test.ts', 'test/**/*.int.test.ts'],
          exclude: ['test/noisy-neighbour.int.test.ts', 'node_modules/**'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Two cores: PGlite instances and server connections are heavy, keep parallelism modest.
          maxWorkers: 2,
        },
      },
      {
        test: {
          // Timing-sensitive (a latency comparison under load): runs last, alone.
          name: 'fair-service',
          sequence: { groupOrder: 2 },
          include: ['test/noisy-neighbour.int.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          maxWorkers: 1,
        },
      },
    ],
  },
});
