import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface S3rverInstance {
  endpoint: string;
  bucket: string;
  /** s3rver's fixed credentials: it checks signatures, so clients must sign with these. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  stop(): Promise<void>;
}

/**
 * Runs in the child. Started with `--openssl-legacy-provider` because s3rver 3.7 encrypts
 * ListObjectsV2 continuation tokens with single DES, which OpenSSL 3 (Node >= 17) only offers from
 * its legacy provider: without it every truncated listing (any paging) answers 500. The child exits
 * when its stdin closes, so a crashed test process cannot leave a server behind.
 */
const childScript = `
const [s3rverPath, directory, bucket] = process.argv.slice(1);
const S3rver = require(s3rverPath);
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket }] });
server.run().then(({ port }) => process.stdout.write(JSON.stringify({ port }) + '\\n'), (error) => {
  console.error(error);
  process.exit(1);
});
process.stdin.on('end', () => server.close().finally(() => process.exit(0)));
process.stdin.resume();
`;

/** Starts a private s3rver on a random port with a fresh bucket in a temporary folder. */
export async function startS3rver(): Promise<S3rverInstance> {
  const directory = await mkdtemp(join(tmpdir(), 'strongroom-s3rver-'));
  const bucket = `strongroom-test-${randomBytes(6).toString('hex')}`;
  const s3rverPath = createRequire(import.meta.url).resolve('s3rver');
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '-e', childScript, s3rverPath, directory, bucket],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  try {
    const port = await readPort(child);
    return {
      endpoint: `http://127.0.0.1:${port}`,
      bucket,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      stop: async () => {
        await stopChild(child);
        await rm(directory, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stopChild(child);
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
}

async function readPort(child: ChildProcess): Promise<number> {
  const lines = createInterface({ input: child.stdout! });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`s3rver exited before listening (code ${code})`);
  });
  const firstLine = once(lines, 'line').then(
    ([line]) => (JSON.parse(line as string) as { port: number }).port,
  );
  try {
    return await Promise.race([firstLine, exited]);
  } finally {
    lines.close();
    exited.catch(() => undefined);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.stdin?.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
