/**
 * The blob phase: the new server's listMissingBlobs is the to-do list (so a rerun starts exactly
 * where the last one stopped, with no local bookkeeping to trust), feeding a pool of parallel
 * streamed transfers getBlob -> uploadBlob. Nothing is buffered whole: the download body is the
 * upload body, tee'd into the backup.
 *
 * The pool is adaptive: a 429 or a 5xx halves it (the server is struggling or rationing), a run
 * of successes grows it back by one up to the configured width. A 429 also pauses every request
 * to that server until its RateLimit-Reset/Retry-After.
 */
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import type { BackupSink } from './backup.ts';
import type { EventSink, MissingBlob } from './events.ts';
import { countingStream, type ProgressTracker } from './progress.ts';
import { describeError, withRetry } from './retry.ts';
import type { PdsSession } from './session.ts';

export class AdaptivePool {
  readonly max: number;
  limit: number;
  #active = 0;
  #streak = 0;
  #waiters: (() => void)[] = [];
  #idle: (() => void)[] = [];

  constructor(max: number) {
    this.max = Math.max(1, Math.floor(max));
    this.limit = this.max;
  }

  get active(): number {
    return this.#active;
  }

  /** Waits for a free slot, then starts the task without waiting for it to finish. */
  async add(task: () => Promise<void>): Promise<void> {
    while (this.#active >= this.limit) await new Promise<void>((r) => this.#waiters.push(r));
    this.#active++;
    void task().finally(() => {
      this.#active--;
      this.#waiters.shift()?.();
      if (this.#active === 0) for (const resolve of this.#idle.splice(0)) resolve();
    });
  }

  /** Resolves when no task is running. */
  async drain(): Promise<void> {
    if (this.#active === 0) return;
    await new Promise<void>((r) => this.#idle.push(r));
  }

  shrink(): void {
    this.limit = Math.max(1, Math.floor(this.limit / 2));
    this.#streak = 0;
  }

  succeeded(): void {
    if (++this.#streak >= this.limit && this.limit < this.max) {
      this.limit++;
      this.#streak = 0;
      this.#waiters.shift()?.();
    }
  }
}

/**
 * Caps the bytes of blobs in flight at once, whatever the pool width: eight 50 MB videos must
 * not mean 400 MB held by the client while a slow server drains them. A blob larger than the
 * whole budget still goes, alone.
 */
export class ByteBudget {
  readonly capacity: number;
  #used = 0;
  #waiters: (() => void)[] = [];
  constructor(capacity: number) {
    this.capacity = capacity;
  }
  async acquire(bytes: number): Promise<number> {
    const want = Math.min(Math.max(bytes, 0), this.capacity);
    while (this.#used > 0 && this.#used + want > this.capacity) await new Promise<void>((r) => this.#waiters.push(r));
    this.#used += want;
    return want;
  }
  release(granted: number): void {
    this.#used -= granted;
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

export interface BlobCopyContext {
  did: string;
  old: PdsSession;
  neu: PdsSession;
  backup?: BackupSink;
  concurrency: number;
  progress: ProgressTracker;
  emit: EventSink;
  /** Blobs that failed for good in this run are not retried in it again. */
  failed: Map<string, MissingBlob>;
  /** Bytes of blobs in flight at once (default 16 MB: eight typical images, or three 5 MB videos). */
  inFlightBytes?: number;
}

/** A blob upload that ended with another CID: the bytes were damaged on the way; try again. */
class DamagedTransfer extends Error {
  override name = 'DamagedTransfer';
  readonly code = 'DamagedTransfer';
}

const PAGE = 500;
const MAX_PASSES = 3;

/** Copies every blob the new server reports missing; returns how many arrived. */
export async function copyMissingBlobs(ctx: BlobCopyContext): Promise<number> {
  const pool = new AdaptivePool(ctx.concurrency);
  const budget = new ByteBudget(ctx.inFlightBytes ?? 16 * 1024 * 1024);
  let copied = 0;
  for (let pass = 1; pass <= MAX_PASSES; pass++) {
    let cursor: string | undefined;
    let started = 0;
    for (;;) {
      const page = await ctx.neu.query<{ cursor?: string; blobs: { cid: string; recordUri?: string }[] }>(
        'com.atproto.repo.listMissingBlobs',
        { limit: PAGE, cursor },
      );
      for (const { cid, recordUri } of page.blobs) {
        if (ctx.failed.has(cid)) continue;
        started++;
        await pool.add(async () => {
          try {
            await transferBlob(ctx, pool, budget, cid);
            copied++;
            ctx.progress.addDone();
          } catch (err) {
            const missing: MissingBlob = { cid, reason: blobFailureReason(err) };
            if (recordUri) missing.record = recordUri;
            ctx.failed.set(cid, missing);
            ctx.emit({
              type: 'warning',
              step: 'blobs',
              message: `blob ${cid}${recordUri ? ` (used by ${recordUri})` : ''} could not be copied: ${missing.reason}`,
            });
          }
        });
      }
      if (!page.cursor || page.blobs.length === 0) break;
      cursor = page.cursor;
    }
    await pool.drain();
    // A new pass picks up anything the list showed while uploads were in flight.
    if (started === 0) break;
  }
  return copied;
}

async function transferBlob(ctx: BlobCopyContext, pool: AdaptivePool, budget: ByteBudget, cid: string): Promise<void> {
  await withRetry(
    async () => {
      await Promise.all([ctx.old.gate.wait(), ctx.neu.gate.wait()]);
      const download = await ctx.old.request('com.atproto.sync.getBlob', {
        method: 'GET',
        params: { did: ctx.did, cid },
        timeoutMs: 60_000,
      });
      ctx.old.gate.observe(download.headers);
      // Unknown sizes count as 1 MB (blob answers normally say their length).
      const granted = await budget.acquire(Number(download.headers.get('content-length')) || 1024 * 1024);
      try {
        const contentType = download.headers.get('content-type') || 'application/octet-stream';
        if (!download.body) throw new DamagedTransfer(`the old server sent blob ${cid} without a body`);
        let body = download.body.pipeThrough(countingStream((n) => ctx.progress.addBytes(n)));
        let backupWrite: Promise<void> | undefined;
        if (ctx.backup && !(await ctx.backup.hasBlob(cid))) {
          const [toUpload, toBackup] = body.tee();
          body = toUpload;
          backupWrite = ctx.backup.writeBlob(cid, toBackup).catch(() => {
            // The backup step fetches whatever is still missing from the backup later.
          });
        }
        const upload = await ctx.neu.request('com.atproto.repo.uploadBlob', {
          method: 'POST',
          body,
          encoding: contentType,
        });
        ctx.neu.gate.observe(upload.headers);
        const result = (await upload.json()) as { blob?: { ref?: { $link?: string } } };
        await backupWrite;
        const stored = result.blob?.ref?.$link;
        if (stored !== cid) {
          throw new DamagedTransfer(`blob ${cid} arrived as ${String(stored)} (damaged on the way)`);
        }
        pool.succeeded();
      } finally {
        budget.release(granted);
      }
    },
    {
      attempts: 7,
      onRetry: (err) => {
        if (err instanceof XrpcClientError && (err.status === 429 || err.status >= 500)) pool.shrink();
        if (err instanceof XrpcClientError && err.status === 429) {
          // The pause belongs to whichever server said it; withRetry already sleeps this task.
          const gate = err.nsid === 'com.atproto.sync.getBlob' ? ctx.old.gate : ctx.neu.gate;
          gate.pauseFor(1000);
        }
      },
    },
  );
}

/** One sentence a user can act on, from the last error of a blob that failed for good. */
export function blobFailureReason(err: unknown): string {
  if (err instanceof XrpcClientError) {
    const notFound = err.status === 404 || (err.status === 400 && /not ?found/i.test(`${err.error} ${err.message}`));
    if (err.nsid === 'com.atproto.sync.getBlob' && notFound) {
      return `the old server no longer has this blob (${err.error})`;
    }
    if (err.nsid === 'com.atproto.repo.uploadBlob' && (err.status === 413 || err.error === 'BlobTooLarge')) {
      return `the new server refused it as too large (${err.error}); ask its operator to raise the upload limit`;
    }
    return `${err.error}: ${err.message}`;
  }
  return describeError(err);
}
