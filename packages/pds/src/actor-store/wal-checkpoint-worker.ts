/**
 * The WalCheckpointer's thread: for each job, open the account database (never creating one: an
 * account deleted meanwhile is simply skipped), run a PASSIVE checkpoint, close, answer.
 */
import { parentPort } from 'node:worker_threads';
import Database from 'better-sqlite3';

parentPort!.on('message', ({ job, path }: { job: number; path: string }) => {
  try {
    const db = new Database(path, { fileMustExist: true });
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } finally {
      db.close();
    }
  } catch {
    // Housekeeping only: the account's own connection checkpoints later.
  }
  parentPort!.postMessage({ job });
});
