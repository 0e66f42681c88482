import { verify as verifySignature } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildTestApp, callAs, projectViewerKey } from '../../test/support/app.ts';
import { systemAuditEntry } from '../../test/support/audit.ts';
import { openTestCore, type TestDatabase, testDatabaseKinds } from '../../test/support/databases.ts';
import { enrolStaff } from '../../test/support/staff.ts';
import { tenantSchemaName } from '../db/tenant-schema.ts';
import type { Core } from '../main/compose.ts';
import { auditRepository } from '../modules/audit/audit.repository.ts';
import { type AuditEntry, hashAuditEntry } from '../modules/audit/audit-chain.ts';
import type { exportProof } from '../modules/audit/audit-export.ts';
import { checkpointMessage } from '../modules/audit/audit-signer.ts';
import type { App } from './app.ts';

const password = 'the audit log never sees this 7f3c';

interface Entry {
  position: number;
  action: string;
  actorKind: string;
  actorId: string | null;
  apiKeyId: string | null;
  outcome: string;
  statusCode: number | null;
  errorCode: string | null;
  requestId: string;
  resourceType: string | null;
  resourceId: string | null;
  changes: string[] | null;
  ip: string | null;
  userAgent: string | null;
  prevHash: string;
  hash: string;
}

/** RFC 4180: quoted cells may hold commas, doubled quotes and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n') {
      rows.push([...row, cell]);
      row = [];
      cell = '';
    } else cell += c;
  }
  return rows;
}

/**
 * What a verifier holding only the file and the platform's public key checks: every entry's own hash,
 * every link, and that the signed checkpoint seals a position in the file with the hash it has.
 */
function verifyExportedJsonl(body: string): {
  entries: Array<Entry & { at: string }>;
  proof: ReturnType<typeof exportProof>;
} {
  const lines = body
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line));
  const proof = lines.pop();
  expect(proof.type).toBe('checkpoint');
  for (const [i, line] of lines.entries()) {
    expect(line.type).toBe('entry');
    const { type: _type, position: _p, prevHash, hash, ...fields } = line;
    expect(hashAuditEntry(prevHash, { ...fields, at: new Date(fields.at) } as AuditEntry)).toBe(hash);
    if (i > 0 && !proof.filtered) expect(prevHash).toBe(lines[i - 1].hash);
    if (i > 0) expect(line.position).toBeGreaterThan(lines[i - 1].position);
  }
  const { checkpoint } = proof;
  const message = checkpointMessage({ ...checkpoint, tenantId: proof.tenantId, at: new Date(checkpoint.at) });
  expect(
    verifySignature(
      null,
      Buffer.from(message),
      proof.publicKey.publicKeyPem,
      Buffer.from(checkpoint.signature, 'base64'),
    ),
  ).toBe(true);
  if (!proof.filtered) {
    expect(lines.find((l) => l.position === checkpoint.position)?.hash).toBe(checkpoint.headHash);
    expect(lines.at(-1)).toMatchObject(proof.head);
  }
  return { entries: lines, proof };
}

for (const kind of await testDatabaseKinds()) {
  describe.skipIf(kind.skipReason)(`audit log over HTTP on ${kind.name}${kind.skipReason}`, () => {
    let core: Core;
    let testDb: TestDatabase;
    let app: App;
    let owner: string;
    let ownerId: string;
    let tenantId: string;
    let otherOwner: string;
    let otherTenantId: string;
    let viewerKey: string;
    let projectId: string;

    const all = async (token = owner): Promise<Entry[]> => {
      await core.audit.flush();
      const items: Entry[] = [];
      for (let cursor: string | null = null; ; ) {
        const response = await callAs(
          app,
          'GET',
          `/api/v1/audit?limit=500${cursor ? `&cursor=${cursor}` : ''}`,
          token,
        );
        expect(response.statusCode).toBe(200);
        items.push(...response.json().items);
        cursor = response.json().nextCursor;
        if (!cursor) return items;
      }
    };
    const ofRequest = async (requestId: string) => (await all()).filter((e) => e.requestId === requestId);

    beforeAll(async () => {
      // Exports read pages of 7 entries here, so every export test crosses page boundaries.
      ({ core, testDb } = await openTestCore(kind, { audit: { exportPageSize: 7 } }));
      app = await buildTestApp(core);
      const a = await core.tenants.create({ slug: 'audit-a', name: 'A', ownerEmail: 'owner@audit-a.test' });
      tenantId = a.tenant.id;
      const signedIn = await core.identity.setupOwner({
        token: a.ownerSetupToken,
        displayName: 'O',
        password,
      });
      owner = signedIn.session.token;
      ownerId = (await core.identity.authenticate(owner))!.principal.userId;
      const b = await core.tenants.create({ slug: 'audit-b', name: 'B', ownerEmail: 'owner@audit-b.test' });
      otherTenantId = b.tenant.id;
      otherOwner = (await core.identity.setupOwner({ token: b.ownerSetupToken, displayName: 'B', password }))
        .session.token;
      projectId = (await callAs(app, 'POST', '/api/v1/projects', owner, { name: 'CRM' })).json().id;
      viewerKey = await projectViewerKey(core, owner, projectId);
    });
    afterAll(async () => {
      await app?.close();
      await testDb?.close();
    });

    it('records a write in its own transaction, with the field names it changed', async () => {
      const created = await callAs(app, 'POST', `/api/v1/projects/${projectId}/records`, owner, {
        collection: 'contacts',
        data: { name: 'Ada', city: 'Paris' },
      });
      expect(created.statusCode).toBe(201);
      // Before any flush: the entry committed with the record, pending until the batch writer chains it.
      const { rows } = await sql<{ action: string; changes: string[] }>`
        select entry ->> 'action' as action, entry -> 'changes' as changes
        from ${sql.id(tenantSchemaName(tenantId), 'audit_pending')}
        where entry ->> 'requestId' = ${created.headers['x-request-id'] as string}`.execute(
        testDb.database.db,
      );
      expect(rows).toEqual([{ action: 'records.create', changes: ['collection', 'data.city', 'data.name'] }]);
      const [entry] = await ofRequest(created.headers['x-request-id'] as string);
      expect(entry).toMatchObject({
        actorKind: 'user',
        actorId: ownerId,
        outcome: 'allow',
        resourceType: 'projects',
        resourceId: projectId,
        ip: '127.0.0.1',
        userAgent: 'lightMyRequest',
      });
    });

    it('records reads, denials and errors exactly once each, with the actor and outcome', async () => {
      const record = (
        await callAs(app, 'POST', `/api/v1/projects/${projectId}/records`, owner, {
          collection: 'c',
          data: { a: 1 },
        })
      ).json();
      const read = await callAs(app, 'GET', `/api/v1/projects/${projectId}/records/${record.id}`, viewerKey);
      expect(read.statusCode).toBe(200);
      const denied = await app.inject({
        method: 'DELETE',
        url: `/api/v1/projects/${projectId}/records/${record.id}`,
        headers: { authorization: `Bearer ${viewerKey}`, 'if-match': '"1"' },
      });
      expect(denied.statusCode).toBe(403);
      const invalid = await callAs(app, 'POST', `/api/v1/projects/${projectId}/records`, owner, { nope: 1 });
      expect(invalid.statusCode).toBe(400);
      const anonymous = await callAs(app, 'GET', '/api/v1/projects', 'srt_not-a-token');
      expect(anonymous.statusCode).toBe(401);

      const viewer = (await core.identity.authenticate(viewerKey))!.principal;
      expect(await ofRequest(read.headers['x-request-id'] as string)).toEqual([
        expect.objectContaining({
          action: 'records.read',
          actorKind: 'api_key',
          actorId: viewer.userId,
          apiKeyId: viewer.credentialId,
          outcome: 'allow',
          statusCode: 200,
          resourceType: 'records',
          resourceId: record.id,
        }),
      ]);
      expect(await ofRequest(denied.headers['x-request-id'] as string)).toEqual([
        expect.objectContaining({
          action: 'records.delete',
          outcome: 'deny',
          statusCode: 403,
          errorCode: 'forbidden',
        }),
      ]);
      expect(await ofRequest(invalid.headers['x-request-id'] as string)).toEqual([
        expect.objectContaining({
          action: 'records.create',
          outcome: 'error',
          statusCode: 400,
          errorCode: 'invalid_request',
        }),
      ]);
      // No tenant to charge it to: the platform chain has it.
      const { rows } = await sql<{ action: string; outcome: string }>`
        select action, outcome from control.audit_log where request_id = ${anonymous.headers['x-request-id'] as string}`.execute(
        testDb.database.db,
      );
      expect(rows).toEqual([{ action: 'projects.list', outcome: 'deny' }]);
    });

    it('records sign-in, its failures and sign-out in the tenant named', async () => {
      const login = (body: object) =>
        app.inject({
          method: 'POST',
          url: '/api/v1/auth/login',
          payload: body,
          headers: { 'user-agent': 'tester' },
        });
      const failed = await login({
        tenant: 'audit-a',
        email: 'owner@audit-a.test',
        password: 'wrong password here 123',
      });
      expect(failed.statusCode).toBe(401);
      const ok = await login({ tenant: 'audit-a', email: 'owner@audit-a.test', password });
      expect(ok.statusCode).toBe(200);
      const out = await callAs(app, 'POST', '/api/v1/auth/logout', ok.json().session.token);
      expect(out.statusCode).toBe(204);
      expect(await ofRequest(failed.headers['x-request-id'] as string)).toEqual([
        expect.objectContaining({
          action: 'auth.login',
          actorKind: 'anonymous',
          outcome: 'deny',
          errorCode: 'invalid_credentials',
          userAgent: 'tester',
          changes: ['email', 'password', 'tenant'],
        }),
      ]);
      expect(await ofRequest(ok.headers['x-request-id'] as string)).toEqual([
        expect.objectContaining({
          action: 'auth.login',
          actorKind: 'user',
          actorId: ownerId,
          outcome: 'allow',
        }),
      ]);
      expect(await ofRequest(out.headers['x-request-id'] as string)).toEqual([
        expect.objectContaining({
          action: 'auth.logout',
          actorKind: 'user',
          actorId: ownerId,
          outcome: 'allow',
        }),
      ]);
    });

    it('records throttling and lockout of sign-in as denials', async () => {
      let last: Awaited<ReturnType<App['inject']>> | undefined;
      for (let attempt = 0; attempt < 8 && last?.statusCode !== 429; attempt++) {
        last = await app.inject({
          method: 'POST',
          url: '/api/v1/auth/login',
          payload: { tenant: 'audit-a', email: 'ghost@audit-a.test', password: 'not the password at all' },
        });
      }
      expect(last?.statusCode).toBe(429);
      expect(await ofRequest(last?.headers['x-request-id'] as string)).toEqual([
        expect.objectContaining({
          action: 'auth.login',
          outcome: 'deny',
          statusCode: 429,
          errorCode: 'login_throttled',
        }),
      ]);
    });

    it("shows a tenant's log to its owner only: never another tenant's entries, 403 for members", async () => {
      expect((await callAs(app, 'GET', '/api/v1/projects', otherOwner)).statusCode).toBe(200);
      const mine = await all();
      const theirs = await all(otherOwner);
      const ids = new Set(mine.map((e) => e.requestId));
      expect(theirs.length).toBeGreaterThan(0);
      expect(theirs.some((e) => ids.has(e.requestId))).toBe(false);
      const forbidden = await callAs(app, 'GET', '/api/v1/audit', viewerKey);
      expect(forbidden.statusCode).toBe(403);
      expect((await callAs(app, 'GET', '/api/v1/audit/export', viewerKey)).statusCode).toBe(403);
      expect((await callAs(app, 'GET', '/api/v1/audit/verify', viewerKey)).statusCode).toBe(403);
      expect(otherTenantId).not.toBe(tenantId);
    });

    it('filters strictly and pages by cursor', async () => {
      for (const query of [
        'limit=1e9',
        'limit=0',
        'limit=abc',
        'action=records.read%27%3B%20drop%20table%20x',
        'actor=not-a-uuid',
        'outcome=maybe',
        'from=yesterday',
        'resourceId=%00',
        'cursor=-1',
        'cursor=1e3',
        'unknown=1',
      ]) {
        const response = await callAs(app, 'GET', `/api/v1/audit?${query}`, owner);
        expect(response.statusCode, query).toBe(400);
        expect(response.json().error.code, query).toBe('invalid_request');
      }
      const backwards = await callAs(
        app,
        'GET',
        '/api/v1/audit?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z',
        owner,
      );
      expect(backwards.statusCode).toBe(400);
      expect(backwards.json().error.code).toBe('audit_filter_invalid');

      const everything = await all();
      const reads = (
        await callAs(app, 'GET', '/api/v1/audit?action=records.read&outcome=allow', owner)
      ).json().items;
      expect(reads.length).toBe(
        everything.filter((e) => e.action === 'records.read' && e.outcome === 'allow').length,
      );
      const byActor = (await callAs(app, 'GET', `/api/v1/audit?actor=${ownerId}&limit=500`, owner)).json()
        .items as Entry[];
      expect(byActor.every((e) => e.actorId === ownerId)).toBe(true);
      const paged: Entry[] = [];
      for (let cursor: string | null = null; ; ) {
        const page: { items: Entry[]; nextCursor: string | null } = (
          await callAs(app, 'GET', `/api/v1/audit?limit=2${cursor ? `&cursor=${cursor}` : ''}`, owner)
        ).json();
        expect(page.items.length).toBeLessThanOrEqual(2);
        paged.push(...page.items);
        cursor = page.nextCursor;
        if (!cursor) break;
      }
      // Newest first; the listing requests themselves are audited as they go, so compare the older part.
      const positions = paged.map((e) => e.position);
      expect(positions).toEqual([...positions].sort((x, y) => y - x));
      expect(positions.filter((p) => p <= everything[0]!.position)).toEqual(
        everything.map((e) => e.position),
      );
    });

    it('exports the log as JSON Lines and CSV with the chain proof, and verifies it', async () => {
      await core.audit.flush();
      await core.audit.checkpoint(tenantId, { force: true });
      const jsonl = await callAs(app, 'GET', '/api/v1/audit/export?format=jsonl', owner);
      expect(jsonl.statusCode).toBe(200);
      const { entries: lines, proof } = verifyExportedJsonl(jsonl.body);
      expect(proof).toMatchObject({
        tenantId,
        filtered: false,
        checkpoint: { position: expect.any(Number) },
      });
      expect(proof.publicKey.publicKeyPem).toContain('BEGIN PUBLIC KEY');
      expect(lines.length).toBeGreaterThan(7);

      const csv = await callAs(app, 'GET', '/api/v1/audit/export?format=csv', owner);
      expect(csv.statusCode).toBe(200);
      expect(csv.headers['content-type']).toContain('text/csv');
      const rows = csv.body.trim().split('\n');
      expect(rows[0]).toBe(
        'position,at,actorKind,actorId,apiKeyId,grantId,action,resourceType,resourceId,outcome,statusCode,errorCode,requestId,ip,userAgent,changes,prevHash,hash',
      );
      expect(rows.length).toBeGreaterThanOrEqual(lines.length + 1);
      expect(
        JSON.parse(Buffer.from(csv.headers['x-audit-checkpoint'] as string, 'base64').toString()),
      ).toMatchObject({
        type: 'checkpoint',
      });

      const verified = await callAs(app, 'GET', '/api/v1/audit/verify', owner);
      expect(verified.statusCode).toBe(200);
      expect(verified.json()).toMatchObject({ ok: true, checkpoints: { database: 1, objectStore: 1 } });
    });

    it('exports every entry once, in chain order, across pages; filters; neutralizes CSV formulas', async () => {
      const hostile = [
        "=cmd|' /C calc'!A0",
        '+SUM(1,2)',
        '-2+3',
        '@import',
        ' =1+1',
        '\t=1',
        '\uff1dfull width',
        "'already quoted",
        'say "hi", twice',
        'line\nbreak\r\nand more',
        'semi;colon',
      ];
      await core.audit.flush();
      const entries = hostile.map(
        (value, i): AuditEntry => ({
          at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
          tenantId,
          actorKind: 'user',
          actorId: ownerId,
          apiKeyId: null,
          grantId: null,
          action: 'export.hostile',
          resourceType: 'records',
          resourceId: `r-${i}`,
          outcome: 'allow',
          statusCode: 200,
          errorCode: null,
          requestId: `hostile-${i}`,
          ip: '192.0.2.1',
          userAgent: value,
          changes: i % 2 ? [value, 'data.plain'] : null,
        }),
      );
      await core.withTenant(tenantId, (scope) => core.audit.append(scope, entries));
      await core.audit.checkpoint(tenantId, { force: true });
      const { rows: stored } = await sql<{ position: string; hash: string }>`
        select position, hash from ${sql.id(tenantSchemaName(tenantId), 'audit_log')} order by position`.execute(
        testDb.database.db,
      );
      expect(stored.length).toBeGreaterThan(3 * 7);

      // Complete, in order, each once: exactly the stored chain (the export ends at the head it began at).
      const full = verifyExportedJsonl((await callAs(app, 'GET', '/api/v1/audit/export', owner)).body);
      expect(full.entries.map((e) => [e.position, e.hash])).toEqual(
        stored.map((r) => [Number(r.position), r.hash]),
      );
      expect(full.proof.checkpoint?.position).toBe(Number(stored.at(-1)!.position));

      // Filtered: the listing's filters, over more than one page.
      const filteredBody = (
        await callAs(app, 'GET', '/api/v1/audit/export?action=export.hostile&format=jsonl', owner)
      ).body;
      const filtered = verifyExportedJsonl(filteredBody);
      expect(filtered.proof.filtered).toBe(true);
      expect(filtered.entries.map((e) => e.requestId)).toEqual(hostile.map((_, i) => `hostile-${i}`));
      expect(filtered.entries.map((e) => e.userAgent)).toEqual(hostile);
      const byActorAndOutcome = verifyExportedJsonl(
        (await callAs(app, 'GET', `/api/v1/audit/export?actor=${ownerId}&outcome=deny`, owner)).body,
      );
      expect(byActorAndOutcome.entries.map((e) => e.position)).toEqual(
        full.entries.filter((e) => e.actorId === ownerId && e.outcome === 'deny').map((e) => e.position),
      );
      for (const query of ['format=xml', 'cursor=5', 'limit=10', 'action=%3Dcmd', 'outcome=maybe']) {
        const refused = await callAs(app, 'GET', `/api/v1/audit/export?${query}`, owner);
        expect(refused.statusCode, query).toBe(400);
      }
      const backwards = await callAs(
        app,
        'GET',
        '/api/v1/audit/export?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z',
        owner,
      );
      expect(backwards.json().error.code).toBe('audit_filter_invalid');

      // CSV: the same entries; no cell a spreadsheet would run, and the escape undoes exactly.
      const csv = parseCsv(
        (await callAs(app, 'GET', '/api/v1/audit/export?action=export.hostile&format=csv', owner)).body,
      );
      const [header, ...rows] = csv;
      expect(rows.length).toBe(hostile.length);
      const column = (name: string) => header!.indexOf(name);
      for (const [i, row] of rows.entries()) {
        expect(row.length).toBe(header!.length);
        for (const cell of row) expect(cell).not.toMatch(/^[\s]*[=+\-@\uff1d]|^[\t\r\n]/);
        const unescaped = (cell: string) => (cell.startsWith("'") ? cell.slice(1) : cell);
        expect(unescaped(row[column('userAgent')]!)).toBe(hostile[i]);
        expect(row[column('hash')]).toBe(filtered.entries[i]!.hash);
        expect(row[column('prevHash')]).toBe(filtered.entries[i]!.prevHash);
        expect(row[column('requestId')]).toBe(`hostile-${i}`);
      }
      expect(rows[0]![column('userAgent')]).toBe("'=cmd|' /C calc'!A0");
      expect(rows[7]![column('userAgent')]).toBe("''already quoted");
    });

    it('streams an export a page at a time, one page fetched ahead, ending at the head it began at', async () => {
      await core.audit.flush();
      const principal = (await core.identity.authenticate(owner))!.principal as Parameters<
        Core['audit']['exportChain']
      >[0];
      const search = vi.spyOn(auditRepository, 'search');
      try {
        const exported = await core.audit.exportChain(principal);
        expect(exported.head.position).toBeGreaterThan(3 * 7);
        const pages = exported.pages;
        // Nothing read before the first page is asked for; then that page and the next, never more
        // (the call counts below are exact: a third page read ahead would show).
        expect(search).toHaveBeenCalledTimes(0);
        const first = await pages.next();
        expect(first.value).toHaveLength(7);
        // The next page is on its way while this one is sent (on PGlite it queues for the one connection).
        await vi.waitFor(() => expect(search).toHaveBeenCalledTimes(2));
        // Entries appended meanwhile are not part of this export.
        await core.withTenant(tenantId, (scope) =>
          core.audit.append(scope, [systemAuditEntry(tenantId, { action: 'export.after' })]),
        );
        const second = await pages.next();
        expect(second.value).toHaveLength(7);
        await vi.waitFor(() => expect(search).toHaveBeenCalledTimes(3));
        const positions = [...(first.value as Entry[]), ...(second.value as Entry[])].map((e) => e.position);
        for await (const page of pages) positions.push(...page.map((e) => e.position));
        expect(positions).toEqual(Array.from({ length: exported.head.position }, (_, i) => i + 1));
        // Keyset: each page's query starts after the previous page's last position; no offset.
        for (const [i, call] of search.mock.calls.entries())
          expect(call[1]).toMatchObject({
            order: 'oldest',
            afterPosition: i * 7,
            throughPosition: exported.head.position,
            limit: 7,
          });
      } finally {
        search.mockRestore();
      }
    });

    it('records staff requests on the platform chain, naming the tenant they touch', async () => {
      const staff = await enrolStaff(core, { email: 'ops@audit.test', displayName: 'Ops', role: 'operator' });
      const shown = await callAs(app, 'GET', `/api/v1/ops/tenants/${tenantId}`, staff.apiKey);
      expect(shown.statusCode).toBe(200);
      const refused = await callAs(app, 'GET', '/api/v1/ops/tenants', 'sro_not-a-key');
      expect(refused.statusCode).toBe(401);
      await core.audit.flush();
      const { rows } = await sql<{
        request_id: string;
        actor_kind: string;
        actor_id: string | null;
        tenant_id: string | null;
        action: string;
        outcome: string;
      }>`
        select request_id, actor_kind, actor_id, tenant_id, action, outcome from control.audit_log
        where request_id in (${shown.headers['x-request-id'] as string}, ${refused.headers['x-request-id'] as string})
        order by position`.execute(testDb.database.db);
      expect(rows).toEqual([
        {
          request_id: shown.headers['x-request-id'],
          actor_kind: 'staff',
          actor_id: staff.staffId,
          tenant_id: tenantId,
          action: 'tenants.read',
          outcome: 'allow',
        },
        {
          request_id: refused.headers['x-request-id'],
          actor_kind: 'anonymous',
          actor_id: null,
          tenant_id: null,
          action: 'tenants.list',
          outcome: 'deny',
        },
      ]);
      // Not in the tenant's own log.
      expect((await all()).some((e) => e.requestId === shown.headers['x-request-id'])).toBe(false);
      await core.audit.checkpoint(null, { force: true });
      expect(await core.audit.verify(null)).toMatchObject({ ok: true });
    });

    it('never stores a password, token, key or sensitive value in an audit entry (canaries)', async () => {
      const canaryValue = 'CANARY-SSN-8c1d2e';
      const policy = await app.inject({
        method: 'PUT',
        url: `/api/v1/projects/${projectId}/collections/patients/policy`,
        headers: { authorization: `Bearer ${owner}`, 'content-type': 'application/json' },
        payload: { sensitive: ['ssn'] },
      });
      expect(policy.statusCode).toBe(200);
      const created = await callAs(app, 'POST', `/api/v1/projects/${projectId}/records`, owner, {
        collection: 'patients',
        data: { ssn: canaryValue },
      });
      expect(created.statusCode).toBe(201);
      const key = await callAs(app, 'POST', '/api/v1/api-keys', owner, {
        name: 'canary key',
        access: 'read',
      });
      expect(key.statusCode).toBe(201);
      const apiKeySecret = key.json().secret as string;
      await callAs(app, 'GET', '/api/v1/projects', apiKeySecret);
      const login = await app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        payload: { tenant: 'audit-a', email: 'owner@audit-a.test', password },
      });
      const sessionToken = login.json().session.token as string;
      await callAs(app, 'GET', `/api/v1/projects/${projectId}/records/${created.json().id}`, sessionToken);
      await core.audit.flush();

      const dump = async (table: string) =>
        JSON.stringify((await sql`select * from ${sql.raw(table)}`.execute(testDb.database.db)).rows);
      const stored =
        (await dump(`${tenantSchemaName(tenantId)}.audit_log`)) + (await dump('control.audit_log'));
      expect(stored).toContain('data.ssn');
      for (const canary of [canaryValue, password, apiKeySecret, sessionToken, owner, viewerKey]) {
        expect(stored).not.toContain(canary);
      }
      // The entries for these requests are there (the test would prove nothing otherwise).
      expect(stored).toContain(created.headers['x-request-id'] as string);
      expect(stored).toContain(login.headers['x-request-id'] as string);
    });
  });
}
