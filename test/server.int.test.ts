import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEntry, freePort, nodeBinary, projectRoot, runCli, tempDataDir } from './support/cli.ts';

/** Black box: `strongroom serve` as a real process on embedded defaults, reached over real TLS. */
describe('strongroom serve', () => {
  const dataDir = tempDataDir();
  let port: number;
  let httpPort: number;
  let server: ChildProcess;
  let logs = '';
  let ca: string;
  let staffKey: string;
  let exit: Promise<number | null>;

  function send(
    path: string,
    options: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path,
          method: options.method ?? 'GET',
          headers: options.headers,
          ca,
          servername: 'localhost',
        },
        (res) => {
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on('error', reject);
      req.end(options.body);
    });
  }

  beforeAll(async () => {
    port = await freePort();
    httpPort = await freePort();
    const staff = await runCli(
      ['staff', 'create', '--email', 'ops@p.test', '--name', 'Ops', '--role', 'operator'],
      {
        STRONGROOM_DATA_DIR: dataDir,
      },
    );
    const setupToken = /(srs_[A-Za-z0-9_-]{43})/.exec(staff.stdout)![1]!;
    server = spawn(nodeBinary, [cliEntry, 'serve'], {
      cwd: projectRoot,
      env: {
        PATH: process.env.PATH ?? '',
        STRONGROOM_DATA_DIR: dataDir,
        STRONGROOM_PORT: String(port),
        STRONGROOM_HTTP_PORT: String(httpPort),
      },
    });
    server.stdout!.on('data', (c) => {
      logs += c;
    });
    server.stderr!.on('data', (c) => {
      logs += c;
    });
    exit = new Promise((resolve) => server.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!logs.includes('strongroom is serving')) {
      if (Date.now() > deadline || server.exitCode !== null)
        throw new Error(`server did not start:\n${logs}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    ca = readFileSync(join(dataDir, 'tls', 'localhost.crt'), 'utf8');
    // The README's staff enrolment: redeem the setup token, confirm a code, receive the key.
    const json = (body: unknown) => ({
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const begun = await send('/api/v1/ops/staff/setup', json({ token: setupToken }));
    const { secret } = JSON.parse(begun.body) as { secret: string };
    const confirmed = await send(
      '/api/v1/ops/staff/setup/confirm',
      json({ token: setupToken, code: await generate({ secret }) }),
    );
    staffKey = (JSON.parse(confirmed.body) as { apiKey: string }).apiKey;
  }, 90_000);

  afterAll(() => {
    if (server.exitCode === null) server.kill('SIGKILL');
  });

  it('serves HTTPS with a certificate valid for localhost, and HSTS', async () => {
    const res = await send('/readyz');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({
      status: 'ready',
      checks: { database: 'ok', objects: 'ok', cache: 'ok', mail: 'ok' },
    });
    expect(res.headers['strict-transport-security']).toContain('max-age=31536000');
  });

  it('refuses TLS older than 1.2', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port,
        ca,
        servername: 'localhost',
        maxVersion: 'TLSv1.1',
        minVersion: 'TLSv1',
      });
      socket.on('secureConnect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.on('error', (error) => resolve((error as NodeJS.ErrnoException).code ?? 'error'));
    });
    expect(outcome).not.toBe('connected');
  });

  it('redirects pages on the plain-HTTP port, and refuses API calls there', async () => {
    const plain = (path: string) =>
      new Promise<{ status: number; location: string | undefined; body: string }>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: httpPort, path, headers: { host: `127.0.0.1:${httpPort}` } },
          (res) => {
            let body = '';
            res.on('data', (c) => {
              body += c;
            });
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, location: res.headers.location, body }),
            );
          },
        );
        req.on('error', reject);
        req.end();
      });
    const page = await plain('/console');
    expect(page.status).toBe(301);
    expect(page.location).toBe(`https://127.0.0.1:${port}/console`);
    const api = await plain('/api/v1/ops/tenants');
    expect(api.status).toBe(403);
    expect(JSON.parse(api.body).error.code).toBe('https_required');
  });

  it('logs JSON without secrets', async () => {
    await send('/api/v1/ops/tenants', { headers: { authorization: `Bearer ${staffKey}` } });
    expect(logs).not.toContain(staffKey);
    expect(logs).not.toContain(readFileSync(join(dataDir, 'master.key'), 'utf8').trim());
  });

  it('finishes in-flight requests on SIGTERM, then exits cleanly', async () => {
    // Start a request and send only half its body, so it is in flight when SIGTERM arrives.
    const body = JSON.stringify({ slug: 'late', name: 'Late', ownerEmail: 'o@late.test' });
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/api/v1/ops/tenants',
          method: 'POST',
          ca,
          servername: 'localhost',
          headers: {
            authorization: `Bearer ${staffKey}`,
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(body)),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 10));
      setTimeout(() => {
        server.kill('SIGTERM');
        setTimeout(() => req.end(body.slice(10)), 300);
      }, 200);
    });
    const finished = await response;
    expect(finished.status).toBe(201);
    expect(JSON.parse(finished.body).tenant.slug).toBe('late');
    expect(await exit).toBe(0);
    expect(logs).toContain('shutting down: draining in-flight requests');
    expect(logs).toContain('"msg":"stopped"');
    // The embedded database was released: the CLI can open it and sees the tenant.
    const listed = await runCli(['tenant', 'list', '--json'], { STRONGROOM_DATA_DIR: dataDir });
    expect(JSON.parse(listed.stdout).map((t: { slug: string }) => t.slug)).toEqual(['late']);
  });
});
