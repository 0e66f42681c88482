// The ceilings for the identity scenarios, in their own process over the same TLS certificate as the
// server under test: a bare Fastify route (no plugins, no database, no authentication) and, given a
// database URL, the "trivial Node server reading one row from Postgres" of the records targets
// (`GET /row`: one prepared primary-key lookup through a pg pool of 10, no authentication).
// Usage: node bench/bare-server.ts <port> <certFile> <keyFile> [databaseUrl]
import { readFileSync } from 'node:fs';
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
