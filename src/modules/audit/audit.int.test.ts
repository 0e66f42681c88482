import { randomBytes, randomInt } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../../test/support/databases.ts';
import type { AnyKysely } from '../../db/database.ts';
import { tenantSchemaName } from '../../db/tenant-schema.ts';
import { createWithTenant, type TenantScope } from '../../db/with-tenant.ts';
import type { Core } from '../../main/compose.ts';
import type { ObjectStore } from '../../ports/object-store.port.ts';
import { auditRepository } from './audit.repository.ts';
import { AuditService, type AuditVerification } from './audit.service.ts';
import { type AuditEntry, hashAuditEntry } from './audit-chain.ts';
import { type AuditRequestContext, runWithAuditContext } from './audit-context.ts';
import { AuditSigner } from './audit-signer.ts';
import { checkRecordHashes, parseStoredRecord } from './audit-stored-row.ts';

function entry(i: number): AuditEntry {
  return {
    at: new Date(Date.UTC(2026, 10, 23, 10, 0, 0, i)),
    tenantId: null,
    actorKind: 'user',
    actorId: `user-${i % 3}`,
    apiKeyId: null,
    grantId: null,
    action: i % 2 ? 'records.read' : 'records.update',
    resourceType: 'records',
    resourceId: `r-${i}`,
    outcome: 'allow',
    statusCode: 200,
    errorCode: null,
    requestId: `req-${i}`,
    ip: '192.0.2.1',
    userAgent: 'test',
    changes: i % 2 ? null : ['data.name'],
  };
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`audit chain on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let root: AnyKysely;
    let tenantCount = 0;

    /** The same chains read in pages of 5 positions, checked on two worker threads. */
    let paged: AuditService;

    beforeAll(async () => {
      const auditSigner = new AuditSigner(randomBytes(32));
      let objects: ObjectStore;
      ({ core, testDb, objects } = await openTestCore(kind, { auditSigner }));
      root = testDb.database.db;
      paged = new AuditService({
        database: testDb.database,
        withTenant: createWithTenant(testDb.database),
        tenants: core.tenantRepository,
        objects,
        signer: auditSigner,
        verify: { pageSize: 5, threads: 2 },
      });
    });
    afterAll(async () => {
      await testDb?.close();
    });

    /** Verifies a chain both ways (one page on the calling thread; pages of 5 on workers): same report. */
    async function verify(tenantId: string | null): Promise<AuditVerification> {
      const report = await core.audit.verify(tenantId);
      expect(await paged.verify(tenantId)).toEqual(report);
      return report;
    }

    /** A fresh tenant whose chain holds `count` entries, sealed by a checkpoint at `sealAt` (default: the head). */
    async function seededTenant(count: number, sealAt = count) {
      tenantCount++;
      const tenant = await core.tenants.create({
        slug: `audit-${tenantCount}`,
        name: 'A',
        ownerEmail: `owner@audit-${tenantCount}.test`,
      });
      const tenantId = tenant.tenant.id;
      const all = Array.from({ length: count }, (_, i) => entry(i + 1));
      await core.withTenant(tenantId, (scope) => core.audit.append(scope, all.slice(0, sealAt)));
      await core.audit.checkpoint(tenantId, { force: true });
      if (sealAt < count) {
        await core.withTenant(tenantId, (scope) => core.audit.append(scope, all.slice(sealAt)));
        await core.audit.checkpoint(tenantId, { force: true });
      }
      return { tenantId, schema: tenantSchemaName(tenantId) };
    }

    /** Runs `fn` on the owner connection with the append-only triggers off: what an attacker with the database's superuser could do. */
    async function tamper(schema: string, fn: (log: ReturnType<typeof sql.id>) => Promise<void>) {
      const log = sql.id(schema, 'audit_log');
      await sql`alter table ${log} disable trigger user`.execute(root);
      await sql`alter table ${sql.id(schema, 'audit_checkpoints')} disable trigger user`.execute(root);
      try {
        await fn(log);
      } finally {
        await sql`alter table ${log} enable trigger user`.execute(root);
        await sql`alter table ${sql.id(schema, 'audit_checkpoints')} enable trigger user`.execute(root);
      }
    }

    it('verifies an intact chain and stores its checkpoint in the database and the object store', async () => {
      const { tenantId } = await seededTenant(30);
      const report = await verify(tenantId);
      expect(report).toMatchObject({
        ok: true,
        entries: 30,
        checkpoints: { database: 1, objectStore: 1, latestPosition: 30 },
      });
      const stored: string[] = [];
      for await (const object of core.objects.list(`audit/${tenantId}/checkpoints/`)) stored.push(object.key);
      expect(stored).toEqual([`audit/${tenantId}/checkpoints/${'30'.padStart(20, '0')}.json`]);
    });

    it('reads back every kind of value exactly as it was hashed, in any session time zone, on both chains', async () => {
      const hostile = [
        '',
        ' ',
        'a,b',
        '(x)',
        '"q"',
        'back\\slash',
        'line\nbreak',
        'tab\t',
        '\u0001',
        'NULL',
        '{b}',
        'ünï',
        '😀',
        '\u2028',
        'x'.repeat(99),
      ];
      const entries = hostile.map(
        (value, i): AuditEntry => ({
          ...entry(i),
          // 0, 100 and 123 ms: the server writes the fraction without its trailing zeros.
          at: new Date(Date.UTC(2026, 10, 23, 10, 0, i, [0, 100, 123][i % 3])),
          actorId: value,
          apiKeyId: i % 2 ? null : '6b1d0c8e-5d8a-4c1e-9a53-2c3f1f0d9a11',
          action: value || 'x',
          resourceType: value,
          resourceId: value,
          outcome: (['allow', 'deny', 'error'] as const)[i % 3]!,
          statusCode: i % 4 ? 200 + i : null,
          errorCode: value,
          requestId: value,
          ip: value,
          userAgent: value.repeat(3),
          changes: [null, [], hostile, [value, 'data.ü']][i % 4] as string[] | null,
        }),
      );
      const { tenantId } = await seededTenant(1);
      await core.withTenant(tenantId, (scope) => core.audit.append(scope, entries));
      await core.audit.appendPlatform(entries.map((e, i) => ({ ...e, tenantId: i % 2 ? null : tenantId })));
      for (const chain of [tenantId, null]) {
        expect((await verify(chain)).ok).toBe(true);
        // The fast path itself (not only its plain-column fallback) reads every entry right.
        for (const timeZone of ['UTC', 'Asia/Kolkata', 'America/St_Johns']) {
          const read = async (db: AnyKysely) => {
            await sql`select set_config('timezone', ${timeZone}, true)`.execute(db);
            const handle = { db, tenantId: chain };
            return {
              records: await auditRepository.recordRange(handle, 0, 1e9),
              plain: await auditRepository.storedRange(handle, 0, 1e9),
            };
          };
          const { records, plain } =
            chain === null
              ? await testDb.database.db.transaction().execute((trx) => read(trx.withSchema('control')))
              : await core.withTenant(tenantId, (scope) => read(scope.db));
          expect(
            records.map((r) => parseStoredRecord(r.record, chain)),
            timeZone,
          ).toEqual(plain.map(({ position: _p, prevHash: _v, hash: _h, ...fields }) => fields));
          const page = {
            tenantId: chain,
            prevHashes: records.map((r) => r.prevHash),
            hashes: records.map((r) => r.hash),
            records: records.map((r) => r.record),
          };
          expect(
            [...checkRecordHashes(page)].every((ok) => ok === 1),
            timeZone,
          ).toBe(true);
        }
      }
    });

    it("refuses UPDATE, DELETE and TRUNCATE of audit tables to the app's tenant role, and to the owner through the triggers", async () => {
      const { tenantId, schema } = await seededTenant(3);
      for (const statement of [
        sql`update audit_log set action = 'x'`,
        sql`delete from audit_log`,
        sql`truncate audit_log`,
        sql`update audit_checkpoints set head_hash = head_hash`,
        sql`delete from audit_checkpoints`,
      ]) {
        await expect(core.withTenant(tenantId, (scope) => statement.execute(scope.trx))).rejects.toThrow(
          /permission denied|append-only/,
        );
      }
      // The owner connection (not the tenant role) is stopped by the triggers.
      await expect(sql`update ${sql.id(schema, 'audit_log')} set action = 'x'`.execute(root)).rejects.toThrow(
        /append-only/,
      );
      await expect(sql`delete from ${sql.id(schema, 'audit_log')}`.execute(root)).rejects.toThrow(
        /append-only/,
      );
      await expect(sql`truncate ${sql.id(schema, 'audit_log')}`.execute(root)).rejects.toThrow(/append-only/);
      const { rows } = await sql<{
        n: number;
      }>`select count(*)::int as n from ${sql.id(schema, 'audit_log')}`.execute(root);
      expect(rows[0]?.n).toBe(3);
      expect((await verify(tenantId)).ok).toBe(true);
    });

    it('keeps positions gapless under concurrent appends', async () => {
      const { tenantId } = await seededTenant(1);
      await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          core.withTenant(tenantId, (scope) => core.audit.append(scope, [entry(100 + i), entry(200 + i)])),
        ),
      );
      const report = await verify(tenantId);
      expect(report).toMatchObject({ ok: true, entries: 49, head: { position: 49 } });
    });

    it("commits a request's write and its entry together, or neither", async () => {
      const { tenantId, schema } = await seededTenant(1);
      const context = (action: string): AuditRequestContext => ({
        requestId: 'req-atomic',
        ip: null,
        userAgent: null,
        action,
        resourceType: null,
        resourceId: null,
        changes: ['theme'],
        tenantId,
        tenantSlug: null,
        actor: { kind: 'user', id: 'u', apiKeyId: null },
        grantId: null,
        audited: false,
        platform: false,
        errorCode: null,
      });
      const write = (key: string) => (scope: TenantScope) =>
        scope.db
          .insertInto('settings')
          .values({ key, value: JSON.stringify({}) })
          .execute();
      // An entry that cannot be stored (action too long for its column) takes the write down with it.
      await expect(
        runWithAuditContext(context('x'.repeat(101)), () => core.withTenant(tenantId, write('lost'))),
      ).rejects.toThrow();
      // A read-write transaction that wrote nothing appends nothing.
      const idle = context('settings.read');
      await runWithAuditContext(idle, () =>
        core.withTenant(tenantId, (scope) => scope.db.selectFrom('settings').selectAll().execute()),
      );
      expect(idle.audited).toBe(false);
      const kept = context('settings.update');
      await runWithAuditContext(kept, () => core.withTenant(tenantId, write('kept')));
      expect(kept.audited).toBe(true);
      const { rows } = await sql<{
        key: string;
      }>`select key from ${sql.id(schema, 'settings')} order by key`.execute(root);
      expect(rows.map((r) => r.key)).toEqual(['kept']);
      // Committed with the write (pending), then chained by the batch writer.
      const pending = await sql<{ action: string }>`
        select entry ->> 'action' as action from ${sql.id(schema, 'audit_pending')}`.execute(root);
      expect(pending.rows).toEqual([{ action: 'settings.update' }]);
      await core.audit.flush();
      const left = await sql`select 1 from ${sql.id(schema, 'audit_pending')}`.execute(root);
      expect(left.rows).toHaveLength(0);
      const entries = await sql<{ action: string; changes: string[] }>`
        select action, changes from ${sql.id(schema, 'audit_log')} where request_id = 'req-atomic'`.execute(
        root,
      );
      expect(entries.rows).toEqual([{ action: 'settings.update', changes: ['theme'] }]);
    });

    it('retries only what a flush failed to write: a sign-in entry its tenant chain took is not appended again', async () => {
      tenantCount++;
      const slug = `audit-${tenantCount}`;
      const { tenant } = await core.tenants.create({ slug, name: 'A', ownerEmail: `owner@${slug}.test` });
      const errors: string[] = [];
      const writer = new AuditService({
        database: testDb.database,
        withTenant: createWithTenant(testDb.database),
        tenants: core.tenantRepository,
        objects: core.objects,
        signer: new AuditSigner(randomBytes(32)),
        onError: (_error, what) => errors.push(what),
      });
      // A refused sign-in naming the tenant (its chain), and a platform entry the platform chain
      // cannot take (not a tenant id): the same batch.
      writer.enqueue({ ...entry(1), requestId: 'req-signin', tenantSlug: slug });
      writer.enqueue({ ...entry(2), requestId: 'req-unwritable', tenantId: 'not-a-uuid', platform: true });
      for (let i = 0; i < 3; i++) await writer.flush();
      expect(errors).toEqual(Array(3).fill('audit batch not written; retrying'));
      const signIns = await sql`
        select position from ${sql.id(tenantSchemaName(tenant.id), 'audit_log')}
        where request_id = 'req-signin'`.execute(root);
      expect(signIns.rows).toHaveLength(1);
      expect(await verify(tenant.id)).toMatchObject({ ok: true, entries: 1 });
    });

    it('chains concurrent writes of one tenant without making them wait for each other, and what a crashed node left pending', async () => {
      const { tenantId, schema } = await seededTenant(1);
      const writes = Array.from({ length: 20 }, (_, i) =>
        runWithAuditContext(
          {
            requestId: `req-concurrent-${i}`,
            ip: null,
            userAgent: null,
            action: 'settings.update',
            resourceType: null,
            resourceId: null,
            changes: ['value'],
            tenantId,
            tenantSlug: null,
            actor: { kind: 'user', id: 'u', apiKeyId: null },
            grantId: null,
            audited: false,
            platform: false,
            errorCode: null,
          },
          () =>
            core.withTenant(tenantId, (scope) =>
              scope.db
                .insertInto('settings')
                .values({ key: `k${i}`, value: '1' })
                .execute(),
            ),
        ),
      );
      await Promise.all(writes);
      await core.audit.flush();
      // A node that died before its flush: an entry only in the pending table.
      const orphan: AuditEntry = {
        at: new Date(),
        tenantId,
        actorKind: 'user',
        actorId: 'u',
        apiKeyId: null,
        grantId: null,
        action: 'settings.update',
        resourceType: null,
        resourceId: null,
        outcome: 'allow',
        statusCode: null,
        errorCode: null,
        requestId: 'req-orphan',
        ip: null,
        userAgent: null,
        changes: ['value'],
      };
      await sql`insert into ${sql.id(schema, 'audit_pending')} (entry) values (${JSON.stringify(orphan)}::jsonb)`.execute(
        root,
      );

      expect(await core.audit.sealPending(tenantId)).toBe(1);
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from ${sql.id(schema, 'audit_log')}
        where request_id like 'req-concurrent-%' or request_id = 'req-orphan'`.execute(root);
      expect(rows[0]?.n).toBe(21);
      const left = await sql`select 1 from ${sql.id(schema, 'audit_pending')}`.execute(root);
      expect(left.rows).toHaveLength(0);
      expect((await verify(tenantId)).problem).toBeUndefined();
    });

    // Each class at both ends of its range and at a random position (a new one every run); every one
    // must be caught and named at the right position.
    const size = 24;
    const positions = (lo: number, hi: number) => [lo, hi, randomInt(lo, hi + 1)];
    it.each(positions(1, size))('detects modification at position %i', async (p) => {
      const { tenantId, schema } = await seededTenant(size);
      await tamper(schema, async (log) => {
        await sql`update ${log} set outcome = 'deny' where position = ${p}`.execute(root);
      });
      expect((await verify(tenantId)).problem).toMatchObject({ position: p, class: 'modified' });
    });

    it.each(positions(1, size - 1))('detects deletion at position %i', async (p) => {
      const { tenantId, schema } = await seededTenant(size);
      const renumber = p % 2 === 0;
      await tamper(schema, async (log) => {
        await sql`delete from ${log} where position = ${p}`.execute(root);
        // Half the time the attacker also closes the gap.
        if (renumber) {
          await sql`update ${log} set position = position + 1000 where position > ${p}`.execute(root);
          await sql`update ${log} set position = position - 1001 where position > 1000`.execute(root);
        }
      });
      expect((await verify(tenantId)).problem).toMatchObject({ position: p, class: 'deleted' });
    });

    it.each(positions(2, size))('detects insertion at position %i', async (p) => {
      const { tenantId, schema } = await seededTenant(size);
      await tamper(schema, async (log) => {
        const { rows } = await sql<{
          hash: string;
        }>`select hash from ${log} where position = ${p - 1}`.execute(root);
        const prevHash = rows[0]!.hash;
        // A well-formed forged entry: it links to its predecessor and hashes correctly.
        const forged = { ...entry(999), tenantId };
        await sql`update ${log} set position = position + 1000 where position >= ${p}`.execute(root);
        await sql`update ${log} set position = position - 999 where position > 1000`.execute(root);
        await sql`insert into ${log} (position, at, actor_kind, actor_id, action, resource_type, resource_id, outcome,
            status_code, request_id, ip, user_agent, changes, prev_hash, hash)
          values (${p}, ${forged.at}, 'user', ${forged.actorId}, ${forged.action}, 'records', ${forged.resourceId}, 'allow',
            200, ${forged.requestId}, '192.0.2.1', 'test', ${forged.changes}, ${prevHash}, ${hashAuditEntry(prevHash, forged)})`.execute(
          root,
        );
      });
      expect((await verify(tenantId)).problem).toMatchObject({ position: p, class: 'inserted' });
    });

    it.each(positions(1, size - 1))('detects reordering at position %i', async (p) => {
      const { tenantId, schema } = await seededTenant(size);
      await tamper(schema, async (log) => {
        await sql`update ${log} set position = 100000 where position = ${p}`.execute(root);
        await sql`update ${log} set position = ${p} where position = ${p + 1}`.execute(root);
        await sql`update ${log} set position = ${p + 1} where position = 100000`.execute(root);
      });
      expect((await verify(tenantId)).problem).toMatchObject({
        position: p,
        class: 'reordered',
      });
    });

    it.each(positions(1, size))('detects truncation of the tail at position %i', async (p) => {
      const { tenantId, schema } = await seededTenant(size);
      await tamper(schema, async (log) => {
        await sql`delete from ${log} where position >= ${p}`.execute(root);
      });
      expect((await verify(tenantId)).problem).toMatchObject({
        position: p,
        class: 'truncated',
      });
    });

    it.each(positions(1, size - 1))(
      'detects rollback to an older valid state sealed at %i',
      async (sealAt) => {
        // Sealed at `sealAt`, then more entries sealed at the head: the database is put back to the
        // first state (entries and checkpoints), as a restore of an old backup would; only the object
        // store still knows the later checkpoint.
        const { tenantId, schema } = await seededTenant(size, sealAt);
        await tamper(schema, async (log) => {
          await sql`delete from ${log} where position > ${sealAt}`.execute(root);
          await sql`delete from ${sql.id(schema, 'audit_checkpoints')} where position > ${sealAt}`.execute(
            root,
          );
        });
        expect((await verify(tenantId)).problem).toMatchObject({
          position: sealAt + 1,
          class: 'rolled_back',
        });
      },
    );

    it('prunes whole sealed segments past retention, keeps the chain verifiable, and allows no other delete', async () => {
      const { tenantId, schema } = await seededTenant(15, 10);
      const log = sql.id(schema, 'audit_log');
      // The door is narrow: a position without a checkpoint, or the tenant role, deletes nothing.
      await expect(
        root.transaction().execute(async (trx) => {
          await sql`select set_config('strongroom.audit_prune_through', '12', true)`.execute(trx);
          await sql`delete from ${log} where position <= 12`.execute(trx);
        }),
      ).rejects.toThrow(/append-only/);
      await expect(
        core.withTenant(tenantId, async (scope) => {
          await sql`select set_config('strongroom.audit_prune_through', '10', true)`.execute(scope.trx);
          await sql`delete from audit_log where position <= 10`.execute(scope.trx);
        }),
      ).rejects.toThrow(/permission denied|append-only/);
      // Inside retention: nothing goes.
      expect(await core.audit.prune(tenantId)).toBeUndefined();
      // A tenant cannot keep less than the restore window.
      await expect(core.audit.setRetentionDays(tenantId, 1)).rejects.toMatchObject({
        code: 'audit_retention_too_short',
      });
      await core.audit.setRetentionDays(tenantId, 30);
      const later = new Date(Date.now() + 31 * 86_400_000);
      // The checkpoint at the head (15) stays; the segment sealed at 10 goes.
      expect(await core.audit.prune(tenantId, later)).toEqual({ prunedThrough: 10, deleted: 10 });
      const { rows } = await sql<{ first: string }>`select min(position)::text as first from ${log}`.execute(
        root,
      );
      expect(rows[0]?.first).toBe('11');
      expect(await verify(tenantId)).toMatchObject({ ok: true, firstPosition: 11, entries: 5 });
      await core.withTenant(tenantId, (scope) => core.audit.append(scope, [entry(16)]));
      expect(await verify(tenantId)).toMatchObject({
        ok: true,
        entries: 6,
        head: { position: 16 },
      });
      // Deleting the first kept entries without a checkpoint behind them is caught.
      await tamper(schema, async () => {
        await sql`delete from ${log} where position <= 12`.execute(root);
      });
      expect((await verify(tenantId)).problem).toMatchObject({ position: 1, class: 'deleted' });
    });

    it('detects a consistently rewritten chain through its checkpoints', async () => {
      const { tenantId, schema } = await seededTenant(size);
      await tamper(schema, async (log) => {
        // Rewrite entry 5 and recompute every hash after it: internally valid, but not what was signed.
        const { rows } = await sql<{
          position: string;
          prev_hash: string;
        }>`select position, prev_hash from ${log} order by position`.execute(root);
        let prev = rows[4]!.prev_hash;
        for (let position = 5; position <= size; position++) {
          const changed = {
            ...entry(position),
            tenantId,
            ...(position === 5 ? { outcome: 'deny' as const } : {}),
          };
          const hash = hashAuditEntry(prev, changed);
          await sql`update ${log} set outcome = ${changed.outcome}, prev_hash = ${prev}, hash = ${hash} where position = ${position}`.execute(
            root,
          );
          prev = hash;
        }
      });
      expect((await verify(tenantId)).problem).toMatchObject({ position: 1, class: 'modified' });
    });
  });
}
