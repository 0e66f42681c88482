// The ceiling for the identity scenarios: a bare Fastify route over the same TLS certificate as the
// server under test, in its own process. No plugins, no database, no authentication.
// Usage: node bench/bare-server.ts <port> <certFile> <keyFile>
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const [port, certFile, keyFile] = process.argv.slice(2);
if (!port || !certFile || !keyFile) throw new Error('usage: bare-server.ts <port> <certFile> <keyFile>');
const app = Fastify({
  logger: false,
  https: { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') },
});
app.get('/bare', async () => ({ ok: true }));
app.get('/healthz', async () => ({ ok: true }));
await app.listen({ host: '127.0.0.1', port: Number(port) });
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    app.close().then(() => process.exit(0));
  });
}
