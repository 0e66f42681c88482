import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { createEncryptStream } from '../src/crypto/stream-aead.ts';
import type { Core } from '../src/main/compose.ts';
import { benchTenant } from './fixtures.ts';
import { type StrongroomServer, startStrongroom } from './strongroom-server.ts';

/** What the issue asks of attachments, relative to Node's own AES-256-GCM rate on the same machine. */
export const attachmentTargets = { uploadShare: 0.5, downloadShare: 0.5, parallelPeakRssMiB: 300 };

const MiB = 1024 * 1024;

export interface AttachmentContext {
  core: Core;
  databaseUrl: string;
  masterKeyHex: string;
  packageDir: string;
  tmp: string;
  outDir: string;
  runs: number;
  /** Size of the single-stream upload and download, MiB (the issue: 64). */
  sizeMiB: number;
  /** The parallel-upload memory check: how many at once, each how large (the issue: 16 x 256 MiB). */
  parallel: number;
  parallelSizeMiB: number;
  log(message: string): void;
  cleanups: Array<() => Promise<void>>;
}

export interface AttachmentResults {
  settings: { runs: number; sizeMiB: number; parallel: number; parallelSizeMiB: number };
  /** Node's AES-256-GCM over one stream, in this process: the yardstick. */
  rawGcmMiBps: number[];
  /** Our streaming AEAD (64 KiB chunks), in this process, for reference. */
  streamAeadMiBps: number[];
  uploadMiBps: number[];
  downloadMiBps: number[];
  parallel: { wallMs: number; statuses: number[]; rssBeforeMiB: number; peakRssMiB: number };
}

export async function runAttachmentScenarios(ctx: AttachmentContext): Promise<AttachmentResults> {
  const { core, log } = ctx;
  const block = randomBytes(MiB);
  const bytes = ctx.sizeMiB * MiB;

  log('attachments: the yardstick, AES-256-GCM in this process');
  const rawGcmMiBps: number[] = [];
  const streamAeadMiBps: number[] = [];
  for (let run = 0; run < ctx.runs; run++) {
    rawGcmMiBps.push(await rate(bytes, () => gcmOver(block, bytes)));
    streamAeadMiBps.push(await rate(bytes, () => streamAeadOver(block, bytes)));
  }

  const tenant = await benchTenant(core, 'bench-files');

  const server: StrongroomServer = await startStrongroom({
    packageDir: ctx.packageDir,
    databaseUrl: ctx.databaseUrl,
    masterKeyHex: ctx.masterKeyHex,
    dataDir: join(ctx.tmp, 'server-attachments'),
    logFile: join(ctx.outDir, 'server-attachments.log'),
  });
  ctx.cleanups.push(() => server.stop());
  const path = `/api/v1/projects/${tenant.projectId}/attachments`;
  const token = tenant.sessionToken;
  log(`attachments: server ${server.origin} (pid ${server.nodePid}), folder object store`);

  const uploadMiBps: number[] = [];
  const downloadMiBps: number[] = [];
  for (let run = 0; run < ctx.runs; run++) {
    let id = '';
    uploadMiBps.push(
      await rate(bytes, async () => {
        const response = await upload(server.origin, path, token, block, bytes);
        if (response.status !== 201) throw new Error(`upload answered ${response.status}: ${response.body}`);
        id = JSON.parse(response.body).id;
      }),
    );
    downloadMiBps.push(
      await rate(bytes, async () => {
        const received = await download(server.origin, `${path}/${id}`, token);
        if (received !== bytes) throw new Error(`download gave ${received} of ${bytes} bytes`);
      }),
    );
    log(
      `attachments: run ${run + 1}: upload ${uploadMiBps.at(-1)!.toFixed(0)} MiB/s, download ${downloadMiBps.at(-1)!.toFixed(0)} MiB/s`,
    );
  }

  log(`attachments: ${ctx.parallel} parallel uploads of ${ctx.parallelSizeMiB} MiB`);
  const rssBeforeMiB = memory(server.nodePid).rssMiB;
  const started = performance.now();
  const responses = await Promise.all(
    Array.from({ length: ctx.parallel }, () =>
      upload(server.origin, path, token, block, ctx.parallelSizeMiB * MiB),
    ),
  );
  const wallMs = performance.now() - started;
  const peakRssMiB = memory(server.nodePid).hwmMiB;
  return {
    settings: {
      runs: ctx.runs,
      sizeMiB: ctx.sizeMiB,
      parallel: ctx.parallel,
      parallelSizeMiB: ctx.parallelSizeMiB,
    },
    rawGcmMiBps,
    streamAeadMiBps,
    uploadMiBps,
    downloadMiBps,
    parallel: { wallMs, statuses: responses.map((r) => r.status), rssBeforeMiB, peakRssMiB },
  };
}

export function renderAttachments(results: AttachmentResults, meta: Record<string, unknown>): string {
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const raw = median(results.rawGcmMiBps);
  const up = median(results.uploadMiBps);
  const down = median(results.downloadMiBps);
  const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');
  const list = (values: number[]) => values.map((v) => v.toFixed(0)).join(', ');
  const { parallel, settings } = results;
  const allStored = parallel.statuses.every((status) => status === 201);
  return `# Attachments benchmark

Generated by \`BENCH_SCENARIOS=attachments npm run bench\`. ${String(meta.startedAt)} → ${String(meta.finishedAt)}.
Machine: ${JSON.stringify(meta.machine)}. Load average ${String(meta.loadavg)}.

The real server (\`strongroom serve\`, HTTPS with its self-signed certificate, folder object store with
fsync, Postgres server) in its own process; a streaming client in the bench process (Node's \`https\`,
no buffering). The yardstick is Node's AES-256-GCM over one ${settings.sizeMiB} MiB stream in the bench
process, measured in the same run. Medians of ${settings.runs} runs.

| measure | MiB/s (runs) | median | share of raw GCM | target | |
| --- | --- | --- | --- | --- | --- |
| raw AES-256-GCM, one stream | ${list(results.rawGcmMiBps)} | ${raw.toFixed(0)} | 100 % | | |
| our streaming AEAD (64 KiB chunks), in process | ${list(results.streamAeadMiBps)} | ${median(results.streamAeadMiBps).toFixed(0)} | ${((median(results.streamAeadMiBps) / raw) * 100).toFixed(0)} % | | |
| ${settings.sizeMiB} MiB upload over HTTPS | ${list(results.uploadMiBps)} | ${up.toFixed(0)} | ${((up / raw) * 100).toFixed(0)} % | ≥ 50 % | ${verdict(up / raw >= attachmentTargets.uploadShare)} |
| ${settings.sizeMiB} MiB download over HTTPS | ${list(results.downloadMiBps)} | ${down.toFixed(0)} | ${((down / raw) * 100).toFixed(0)} % | ≥ 50 % | ${verdict(down / raw >= attachmentTargets.downloadShare)} |

${settings.parallel} parallel uploads of ${settings.parallelSizeMiB} MiB: ${allStored ? 'all stored (201)' : `statuses ${parallel.statuses.join(', ')}`} in
${(parallel.wallMs / 1000).toFixed(1)} s; server RSS ${parallel.rssBeforeMiB.toFixed(0)} MiB before, peak (VmHWM, since start)
${parallel.peakRssMiB.toFixed(0)} MiB: target < ${attachmentTargets.parallelPeakRssMiB} MiB, ${verdict(allStored && parallel.peakRssMiB < attachmentTargets.parallelPeakRssMiB)}.

Not yet measured here: the Directus peer's 1 MiB upload and download in the same run (its harness
is in \`../shared/bench/peers/\`), and the S3 object store (its SDK buffers up to 16 MiB per upload).
`;
}

async function rate(bytes: number, work: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await work();
  return bytes / MiB / ((performance.now() - started) / 1000);
}

async function gcmOver(block: Buffer, bytes: number): Promise<void> {
  const cipher = createCipheriv('aes-256-gcm', randomBytes(32), randomBytes(12));
  for (let done = 0; done < bytes; done += block.length) cipher.update(block);
  cipher.final();
}

async function streamAeadOver(block: Buffer, bytes: number): Promise<void> {
  const stream = createEncryptStream(randomBytes(32), { aad: Buffer.from('bench') });
  stream.resume();
  for (let done = 0; done < bytes; done += block.length) {
    if (!stream.write(block)) await new Promise((resolve) => stream.once('drain', resolve));
  }
  await new Promise((resolve, reject) => stream.end(resolve).once('error', reject));
}

export function upload(
  origin: string,
  path: string,
  token: string,
  block: Buffer,
  bytes: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${origin}${path}?filename=bench.bin`,
      {
        method: 'PUT',
        rejectUnauthorized: false,
        agent: false,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/octet-stream',
          'content-length': String(bytes),
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (piece: string) => {
          body += piece;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    let sent = 0;
    const write = () => {
      while (sent < bytes) {
        const piece = block.subarray(0, Math.min(block.length, bytes - sent));
        sent += piece.length;
        if (!req.write(piece)) {
          req.once('drain', write);
          return;
        }
      }
      req.end();
    };
    write();
  });
}

export function download(origin: string, path: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${origin}${path}`,
      { rejectUnauthorized: false, agent: false, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        if (res.statusCode !== 200) reject(new Error(`download answered ${res.statusCode}`));
        let received = 0;
        res.on('data', (piece: Buffer) => {
          received += piece.length;
        });
        res.on('end', () => resolve(received));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function memory(pid: number): { rssMiB: number; hwmMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
}
