// The ceilings for the identity scenarios, in their own process over the same TLS certificate as the
// server under test: a bare Fastify route (no plugins, no database, no authentication) and, given a
// database URL, the "trivial Node server reading one row from Postgres" of the records targets
// (`GET /row`: one prepared primary-key lookup through a pg pool of 10, no authentication).
// The attachments scenario's yardsticks are here too: `PUT /sink` reads a request body and drops
// it, `GET /source?bytes=N` streams N bytes from one buffer in memory: TLS and HTTP on the same
// stack, with no authentication, crypto of our own, hashing or disk.
// Usage: node bench/bare-server.ts <port> <certFile> <keyFile> [databaseUrl]
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import Fastify from 'fastify';
import pg from 'pg';

const [port, certFile, keyFile, databaseUrl] = process.argv.slice(2);
if (!port || !certFile || !keyFile)
  throw new Error('usage: bare-server.ts <port> <certFile> <keyFile> [databaseUrl]');
const app = Fastify({
  logger: false,
  https: { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') },
});
app.get('/bare', async () => ({ ok: true }));
app.get('/healthz', async () => ({ ok: true }));
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
app.put('/sink', async (request) => {
  let bytes = 0;
  for await (const piece of request.raw) bytes += (piece as Buffer).length;
  return { bytes };
});
const sourceBlock = Buffer.alloc(1024 * 1024, 7);
app.get<{ Querystring: { bytes?: string } }>('/source', async (request, reply) => {
  const total = Number(request.query.bytes ?? 0);
  let sent = 0;
  const body = new Readable({
    read() {
      while (sent < total) {
        const piece = sourceBlock.subarray(0, Math.min(sourceBlock.length, total - sent));
        sent += piece.length;
        if (!this.push(piece)) return;
      }
      this.push(null);
    },
  });
  return reply
    .header('content-type', 'application/octet-stream')
    .header('content-length', String(total))
    .send(body);
});
const pool = databaseUrl ? new pg.Pool({ connectionString: databaseUrl, max: 10 }) : undefined;
if (pool) {
  await pool.query(
    'create table if not exists public.bench_one_row (id int primary key, data jsonb not null)',
  );
  await pool.query(
    `insert into public.bench_one_row values (1, '{"name":"Ada Lovelace","email":"ada@example.test","visits":12}') on conflict do nothing`,
  );
  app.get('/row', async () => {
    const { rows } = await pool.query({
      name: 'row',
      text: 'select id, data from public.bench_one_row where id = $1',
      values: [1],
    });
    return rows[0];
  });
}
await app.listen({ host: '127.0.0.1', port: Number(port) });
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    app
      .close()
      .then(() => pool?.end())
      .then(() => process.exit(0));
  });
}
