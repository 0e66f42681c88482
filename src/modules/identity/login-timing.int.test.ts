import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import { hashPassword } from '../../crypto/password.ts';
import type { Core } from '../../main/compose.ts';
import { newId } from '../../platform/ids.ts';

const password = 'the same long password for all of them';
const samples = 11;

/**
 * No user enumeration by timing: an unknown tenant, an unknown email, a wrong password and a disabled
 * account must take the same time, not only give the same answer. They do the same argon2 work, and
 * every refusal is held to the same least wall time (200 ms), which covers what still differs (a
 * lookup that finds a row or not, machine noise).
 * The four kinds run interleaved, so machine noise falls on all of them alike, and their medians are
 * compared. Only the embedded database: the argon2 work is what is compared, not the database.
 */
const [embedded] = await testDatabaseKinds();

describe.skipIf(embedded!.skipReason)('login timing', () => {
  let core: Core;
  let testDb: TestDatabase;

  beforeAll(async () => {
    ({ core, testDb } = await openTestCore(embedded!));
    const tenantId = (await core.tenants.create({ slug: 'timing', name: 'T', ownerEmail: 'o@timing.test' }))
      .tenant.id;
    const passwordHash = await hashPassword(password);
    await core.withTenant(tenantId, (scope) =>
      scope.db
        .insertInto('users')
        .values(
          Array.from({ length: samples }, (_, i) => [
            {
              id: newId(),
              email: `active${i}@timing.test`,
              display_name: 'A',
              status: 'active',
              role: 'member',
              password_hash: passwordHash,
            },
            {
              id: newId(),
              email: `disabled${i}@timing.test`,
              display_name: 'D',
              status: 'disabled',
              role: 'member',
              password_hash: passwordHash,
            },
          ]).flat(),
        )
        .execute(),
    );
  });
  afterAll(async () => testDb?.close());

  it('takes as long for an unknown tenant or email, a wrong password and a disabled account', async () => {
    const kinds = {
      'unknown tenant': (i: number) => ({
        tenant: 'no-such-tenant',
        email: `active${i}@timing.test`,
        password,
      }),
      'unknown email': (i: number) => ({ tenant: 'timing', email: `nobody${i}@timing.test`, password }),
      'wrong password': (i: number) => ({
        tenant: 'timing',
        email: `active${i}@timing.test`,
        password: `${password}!`,
      }),
      'disabled account': (i: number) => ({ tenant: 'timing', email: `disabled${i}@timing.test`, password }),
    };
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(kinds).map((name) => [name, []]));
    for (let i = 0; i < samples; i++) {
      for (const [name, input] of Object.entries(kinds)) {
        const started = performance.now();
        await expect(core.identity.login(input(i))).rejects.toMatchObject({ code: 'invalid_credentials' });
        times[name]!.push(performance.now() - started);
      }
    }
    const medians = Object.fromEntries(Object.entries(times).map(([name, t]) => [name, median(t)]));
    const values = Object.values(medians);
    const spread = Math.max(...values) - Math.min(...values);
    // "Within a few ms".
    const tolerance = 5;
    // Every refusal waited out the floor: none came back early.
    expect(Math.min(...Object.values(times).flat())).toBeGreaterThanOrEqual(199);
    if (process.env.PRINT_TIMING) console.log(JSON.stringify({ medians, spread, tolerance }));
    expect({ medians, spread: spread <= tolerance }).toEqual({ medians, spread: true });
  });
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
