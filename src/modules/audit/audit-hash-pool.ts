import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { checkRecordHashes, type RecordPage } from './audit-stored-row.ts';

/** Checks pages of stored entries against their own hashes: on worker threads, or inline. */
export interface EntryHashChecker {
  check(page: RecordPage): Promise<Uint8Array>;
  close(): Promise<void>;
}

/**
 * Worker threads by default: one per core, 1 to 4 (the main thread mostly waits for rows). Handing
 * pages to workers costs CPU (on the bench's 2 cores, 1,000,000 entries took about 12 s of CPU with
 * two workers, 8.5 s on the calling thread) but spreads it: with two workers the bench's medians were
 * 8.9-13.9 s at load averages of 5 to 7, on the calling thread alone 16.3 s at about 5.
 */
export function defaultVerifyThreads(): number {
  return Math.min(4, Math.max(1, availableParallelism()));
}

/**
 * `threads` worker threads, each given pages in turn (each entry's hash depends only on its own stored
 * columns, so pages are independent); with 0, or if a thread cannot start, the check runs inline.
 * A thread that dies fails the pages it held, and verify with them: never a page reported as checked.
 */
export function openEntryHashChecker(threads: number): EntryHashChecker {
  if (threads < 1) return inlineChecker;
  const workers: Worker[] = [];
  const waiting = new Map<number, { resolve: (flags: Uint8Array) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  const failAll = (error: Error) => {
    for (const { reject } of waiting.values()) reject(error);
    waiting.clear();
  };
  try {
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(new URL('./audit-hash.worker.ts', import.meta.url), {
        // Pages are short-lived garbage: a larger young generation keeps them out of the old one.
        resourceLimits: { maxYoungGenerationSizeMb: 64 },
      });
      worker.on('message', (answer: { id: number; consistent: Uint8Array }) => {
        waiting.get(answer.id)?.resolve(answer.consistent);
        waiting.delete(answer.id);
      });
      worker.on('error', failAll);
      worker.on('exit', (code) => {
        if (code !== 0) failAll(new Error(`an audit hash worker stopped (exit code ${code})`));
      });
      worker.unref();
      workers.push(worker);
    }
  } catch {
    for (const worker of workers) void worker.terminate();
    return inlineChecker;
  }
  return {
    check(page) {
      const id = nextId++;
      const worker = workers[id % workers.length]!;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        worker.postMessage({ id, ...page });
      });
    },
    async close() {
      await Promise.all(workers.map((worker) => worker.terminate()));
    },
  };
}

const inlineChecker: EntryHashChecker = {
  check: async (page) => checkRecordHashes(page),
  close: async () => undefined,
};
