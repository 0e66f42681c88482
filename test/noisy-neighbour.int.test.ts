import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noisyTargets, runNoisyNeighbour } from '../bench/noisy-neighbour.ts';
import type { Core } from '../src/main/compose.ts';
import { projectRoot } from './support/cli.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from './support/databases.ts';
import { findService } from './support/services.ts';

/**
 * The noisy-neighbour benchmark (bench/noisy-neighbour.ts) at a reduced size: tenant A offers ten
 * times its rate limit while tenant B reads at a steady rate, on one real server. This suite runs
 * last and alone (its own vitest project), so no other test competes for the two cores.
 *
 * Asserted: B is served every request, at its offered rate, beside the flood; A gets its limit and
 * no more; the rest of A's flood is refused. B's p99 rise is measured and printed but not asserted
 * here: on this 2-core machine the load generators share the cores with the server, so the flood's
 * client costs B latency whatever the server does (see bench/RESULTS-noisy.md for the full-size run
 * and the issue's < 20 % target).
 */
const postgres = (await testDatabaseKinds()).find((kind) => kind.name === 'postgres')!;
const redis = await findService('redis');
const skipReason = postgres.skipReason || redis.skipReason;

describe.skipIf(skipReason)(`fair service between tenants${skipReason}`, () => {
  let core: Core;
  let testDb: TestDatabase;
  let masterKey: Buffer;
  const tmp = mkdtempSync(join(tmpdir(), 'strongroom-noisy-'));

  beforeAll(async () => {
    ({ core, testDb, masterKey } = await openTestCore(postgres));
  });
  afterAll(async () => {
    await testDb?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('serves B without an error while A floods at 10x its limit, and holds A to its limit', async () => {
    const results = await runNoisyNeighbour({
      core,
      databaseUrl: testDb.url!,
      masterKeyHex: masterKey.toString('hex'),
      packageDir: projectRoot,
      tmp,
      cacheUrl: redis.url!,
      rounds: 3,
      phaseS: 3,
      aLimit: 20,
      bRate: 200,
      log: (line) => console.log(line),
    });
    expect(results.bFailures).toBe(0);
    // Every round, B was served at the offered rate beside the flood.
    for (const round of results.rounds) expect(round.noisy.ok_2xx).toBeGreaterThan(200 * 3 * 0.9);
    // A got its limit (a fixed one-second window: at most one extra window's worth at the edges)…
    expect(results.aAdmittedPerS).toBeLessThanOrEqual(results.aLimit * 1.5);
    expect(results.aAdmittedPerS).toBeGreaterThan(results.aLimit * 0.5);
    // …and the rest of its flood was refused.
    expect(results.aRefused).toBeGreaterThan(results.aOffered * 3 * results.rounds.length * 0.5);
    console.log(
      `B p99 ${results.baselineP99Ms} ms alone, ${results.noisyP99Ms} ms beside the flood ` +
        `(rise ${(results.p99Rise * 100).toFixed(0)} %; the issue's target is < ${noisyTargets.maxP99Rise * 100} %)`,
    );
  }, 180_000);
});
