/**
 * Copies account databases' WAL files into the database files on a worker thread. better-sqlite3
 * runs every statement on the calling thread, so a checkpoint of a freshly imported repository
 * (tens of MB of pages to copy, and an fsync of each file) would otherwise stall every request
 * of every account for as long as it takes. SQLite lets another connection checkpoint while the
 * account's own connection keeps reading and writing (PASSIVE: it copies what it can without
 * waiting for any lock), so the worker opens its own connection to the file for each job.
 */
import { Worker } from 'node:worker_threads';

export class WalCheckpointer {
  #worker: Worker | undefined;
  #nextJob = 0;
  readonly #waiting = new Map<number, () => void>();
  #closed = false;

  /**
   * Checkpoints the database at `path` on the worker. Resolves when it is done or could not be
   * done (housekeeping only: the account's next automatic checkpoint then does it); never rejects.
   */
  checkpoint(path: string): Promise<void> {
    if (this.#closed) return Promise.resolve();
    let worker: Worker;
    try {
      worker = this.#worker ??= this.#start();
    } catch {
      return Promise.resolve();
    }
    const job = this.#nextJob++;
    return new Promise<void>((resolve) => {
      this.#waiting.set(job, resolve);
      // Referenced while a job is out, so a process that only waits for it stays alive.
      if (this.#waiting.size === 1) worker.ref();
      worker.postMessage({ job, path });
    });
  }

  #start(): Worker {
    const worker = new Worker(new URL('./wal-checkpoint-worker.ts', import.meta.url));
    worker.unref();
    worker.on('message', ({ job }: { job: number }) => {
      this.#waiting.get(job)?.();
      this.#waiting.delete(job);
      if (this.#waiting.size === 0) worker.unref();
    });
    // A worker that fails emits 'error' and then 'exit'. Only the current worker's end releases
    // the jobs waiting: by the time an old worker's 'exit' arrives, they may be a new worker's.
    const gone = () => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#releaseAll();
    };
    worker.on('error', gone);
    worker.on('exit', gone);
    return worker;
  }

  #releaseAll(): void {
    for (const resolve of this.#waiting.values()) resolve();
    this.#waiting.clear();
  }

  /** Stops the worker (a checkpoint under way is abandoned; SQLite keeps the files consistent). */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#releaseAll();
    await worker?.terminate();
  }
}
