import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  openTestCore,
  randomMasterKey,
  type TestDatabase,
  testDatabaseKinds,
} from '../../../test/support/databases.ts';
import { LocalKeyProvider, localKekId } from '../../adapters/keys/key-provider.local.ts';
import { type Core, composeCore, prepareControlPlane } from '../../main/compose.ts';
import { AppError } from '../../platform/errors.ts';
import type { RotationProgress } from './tenant-keys.service.ts';

/** Another process starting over the same database with a different master-key configuration. */
function coreWithKeys(core: Core, keys: { current: Buffer; previous?: Buffer }): Core {
  return composeCore({
    database: core.database,
    objects: core.objects,
    keyProvider: new LocalKeyProvider(keys),
  });
}

async function createTenants(core: Core, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const { tenant } = await core.tenants.create({
      slug: `keys-${i}`,
      name: `K${i}`,
      ownerEmail: `o${i}@keys.test`,
    });
    ids.push(tenant.id);
  }
  return ids;
}

async function dataKeys(core: Core, ids: string[]): Promise<Buffer[]> {
  const keys: Buffer[] = [];
  for (const id of ids) keys.push((await core.keys.getDataKey(id)).bytes);
  return keys;
}

async function storedKekIds(core: Core): Promise<{ keys: string[]; check: string }> {
  const keys = await core.database.control
    .selectFrom('tenant_keys')
    .select('kek_id')
    .orderBy('tenant_id')
    .execute();
  const check = await core.database.control
    .selectFrom('key_check')
    .select('kek_id')
    .executeTakeFirstOrThrow();
  return { keys: keys.map((r) => r.kek_id), check: check.kek_id };
}

/** Every way a 32-byte key might be printed. */
function encodings(key: Buffer): string[] {
  return [
    key.toString('hex'),
    key.toString('hex').toUpperCase(),
    key.toString('base64'),
    key.toString('base64url'),
  ];
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`tenant keys on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let k1: Buffer;

    beforeEach(async () => {
      ({ core, testDb, masterKey: k1 } = await openTestCore(kind));
    });
    afterEach(async () => testDb?.close());

    it('refuses a wrong master key at start-up without revealing either key or changing anything', async () => {
      const [id] = await createTenants(core, 1);
      const [before] = await dataKeys(core, [id!]);
      const k2 = randomMasterKey();
      const wrong = coreWithKeys(core, { current: k2 });

      const error = await prepareControlPlane(wrong).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(AppError);
      expect(error).toMatchObject({
        code: 'master_key_mismatch',
        details: { expectedKekId: localKekId(k1), configuredKekId: localKekId(k2) },
      });
      await expect(wrong.keys.verifyMasterKey()).rejects.toMatchObject({ code: 'master_key_mismatch' });
      const visible = [
        String(error),
        (error as Error).stack,
        JSON.stringify((error as AppError).details),
      ].join('\n');
      for (const leaked of [...encodings(k1), ...encodings(k2)]) expect(visible).not.toContain(leaked);

      expect(await storedKekIds(core)).toEqual({ keys: [localKekId(k1)], check: localKekId(k1) });
      const fresh = coreWithKeys(core, { current: k1 });
      await prepareControlPlane(fresh);
      expect((await fresh.keys.getDataKey(id!)).bytes).toEqual(before);
    });

    it('rotates the master key online and resumably, keeping every data key', async () => {
      const ids = await createTenants(core, 3);
      const before = await dataKeys(core, ids);
      const k2 = randomMasterKey();

      // During the rotation both keys are configured: every tenant stays readable before and after.
      const rotating = coreWithKeys(core, { current: k2, previous: k1 });
      await prepareControlPlane(rotating);
      expect(await dataKeys(rotating, ids)).toEqual(before);

      const progress: RotationProgress[] = [];
      const result = await rotating.keys.rotateMasterKey((p) => progress.push(p));

      expect(result).toEqual({ done: 3, total: 3 });
      expect(progress[0]).toEqual({ done: 0, total: 3 });
      expect(progress.at(-1)).toEqual({ done: 3, total: 3 });
      expect(progress.map((p) => p.done)).toEqual([0, 1, 2, 3]);
      expect(await storedKekIds(core)).toEqual({
        keys: ids.map(() => localKekId(k2)),
        check: localKekId(k2),
      });
      expect(await dataKeys(coreWithKeys(core, { current: k2, previous: k1 }), ids)).toEqual(before);

      // The new key alone now suffices; the old key alone is refused.
      const rotated = coreWithKeys(core, { current: k2 });
      await prepareControlPlane(rotated);
      expect(await dataKeys(rotated, ids)).toEqual(before);
      const stale = coreWithKeys(core, { current: k1 });
      await expect(prepareControlPlane(stale)).rejects.toMatchObject({ code: 'master_key_mismatch' });
      await expect(stale.keys.getDataKey(ids[0]!)).rejects.toMatchObject({ code: 'master_key_unknown' });

      // Running it again finds nothing left to rewrap.
      expect(await rotating.keys.rotateMasterKey()).toEqual({ done: 0, total: 0 });
      expect(await rotated.keys.rotateMasterKey()).toEqual({ done: 0, total: 0 });
      expect(await dataKeys(coreWithKeys(core, { current: k2 }), ids)).toEqual(before);
    });

    it('resumes a rotation that stopped part-way', async () => {
      const ids = await createTenants(core, 3);
      const before = await dataKeys(core, ids);
      const k2 = randomMasterKey();
      const rotating = coreWithKeys(core, { current: k2, previous: k1 });
      await prepareControlPlane(rotating);

      // The process stops after rewrapping the first key.
      await expect(
        rotating.keys.rotateMasterKey(({ done }) => {
          if (done === 1) throw new Error('stopped');
        }),
      ).rejects.toThrow('stopped');
      const midway = await storedKekIds(core);
      expect(midway.keys.filter((k) => k === localKekId(k2))).toHaveLength(1);
      expect(midway.check).toBe(localKekId(k1)); // the canary moves only once every key is rewrapped
      expect(await dataKeys(coreWithKeys(core, { current: k2, previous: k1 }), ids)).toEqual(before);

      const restarted = coreWithKeys(core, { current: k2, previous: k1 });
      await prepareControlPlane(restarted);
      expect(await restarted.keys.rotateMasterKey()).toEqual({ done: 2, total: 2 });
      expect(await storedKekIds(core)).toEqual({
        keys: ids.map(() => localKekId(k2)),
        check: localKekId(k2),
      });
      const rotated = coreWithKeys(core, { current: k2 });
      await prepareControlPlane(rotated);
      expect(await dataKeys(rotated, ids)).toEqual(before);
    });

    it("does not unwrap a tenant's wrapped key copied onto another tenant's row", async () => {
      const [a, b] = await createTenants(core, 2);
      const [keyA, keyB] = await dataKeys(core, [a!, b!]);
      expect(keyB).not.toEqual(keyA);

      await sql`
        update control.tenant_keys
        set wrapped = (select wrapped from control.tenant_keys where tenant_id = ${a})
        where tenant_id = ${b}`.execute(core.database.db);
      core.keys.forget(b!);

      await expect(core.keys.getDataKey(b!)).rejects.toMatchObject({ code: 'decryption_failed' });
      await expect(coreWithKeys(core, { current: k1 }).keys.getDataKey(b!)).rejects.toMatchObject({
        code: 'decryption_failed',
      });
      expect((await core.keys.getDataKey(a!)).bytes).toEqual(keyA);
    });
  });
}
