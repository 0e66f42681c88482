import { parentPort } from 'node:worker_threads';
import { checkRecordHashes, type RecordPage } from './audit-stored-row.ts';

// One of verify's hash checkers (audit-hash-pool.ts): gets a page of stored entries, answers which
// of them match their own stored hash. Nothing else: no database, no keys, no state between pages.
parentPort?.on('message', (page: RecordPage & { id: number }) => {
  const consistent = checkRecordHashes(page);
  parentPort?.postMessage({ id: page.id, consistent }, [consistent.buffer as ArrayBuffer]);
});
