/**
 * Group commit: write requests to one repository that arrive while its previous commit is being
 * made are coalesced into one signed commit. Each request gets its own results and the shared
 * commit, exactly as if it had been an applyWrites with the others; signing and the transaction
 * are paid once for all of them. A request with swapCommit (it names the commit it expects to
 * follow), or touching a record another queued request touches, is committed on its own; a
 * shared commit stays within what one firehose #commit may carry.
 */
import type { Cid } from '@portage/atproto/cid';
import { MAX_COMMIT_BLOCKS_BYTES } from '../sequencer/events.ts';
import { MAX_WRITES_PER_COMMIT, type PreparedWrite } from './prepare-writes.ts';
import { estimatedEventBytes } from './repo-engine.ts';
import type { CommitResult } from './types.ts';
import type { WriteLocks } from './write-lock.ts';

/** A write request waiting for its account's next commit. */
export interface QueuedWrite {
  writes: PreparedWrite[];
  swapCommit: Cid | undefined;
  resolve: (result: CommitResult) => void;
  reject: (err: unknown) => void;
}

/**
 * Commits a batch under the account's write lock, settling each request it commits or refuses,
 * and returns the requests left for the next commit (put back at the head of the queue).
 */
export type CommitBatch = (did: string, batch: QueuedWrite[]) => Promise<QueuedWrite[]>;

/**
 * The requests at the head of the queue that can share one commit: in arrival order, no
 * swapCommit, no record touched twice, and within the firehose's limits for one #commit: at most
 * 200 ops and (estimated) 2,000,000 bytes of blocks. The first request is always taken: on its
 * own it is as large as the client made it.
 */
function takeBatch(queue: readonly QueuedWrite[]): QueuedWrite[] {
  const first = queue[0] as QueuedWrite;
  if (first.swapCommit) return [first];
  const batch = [first];
  const paths = new Set(first.writes.map((w) => w.path));
  let count = first.writes.length;
  let bytes = estimatedEventBytes(first.writes);
  for (let i = 1; i < queue.length; i++) {
    const item = queue[i] as QueuedWrite;
    if (item.swapCommit || count + item.writes.length > MAX_WRITES_PER_COMMIT) break;
    const itemBytes = estimatedEventBytes(item.writes);
    if (bytes + itemBytes > MAX_COMMIT_BLOCKS_BYTES) break;
    if (item.writes.some((w) => paths.has(w.path))) break;
    for (const w of item.writes) paths.add(w.path);
    count += item.writes.length;
    bytes += itemBytes;
    batch.push(item);
  }
  return batch;
}

export class GroupCommit {
  private readonly queues = new Map<string, QueuedWrite[]>();
  private readonly locks: WriteLocks;
  private readonly commitBatch: CommitBatch;

  constructor(locks: WriteLocks, commitBatch: CommitBatch) {
    this.locks = locks;
    this.commitBatch = commitBatch;
  }

  /** Queues a request for the account's next commit; settles once that commit is durable. */
  enqueue(did: string, writes: PreparedWrite[], swapCommit: Cid | undefined): Promise<CommitResult> {
    return new Promise<CommitResult>((resolve, reject) => {
      let queue = this.queues.get(did);
      if (!queue) {
        queue = [];
        this.queues.set(did, queue);
      }
      queue.push({ writes, swapCommit, resolve, reject });
      // Start after the requests already readable on other sockets have been parsed and queued
      // too (setImmediate runs after the event loop's I/O phase): otherwise each request would
      // be committed alone before the next one is even read, and nothing would be coalesced.
      if (queue.length === 1) setImmediate(() => void this.drain(did, queue));
    });
  }

  /** Commits queued requests batch by batch until the account's queue is empty. */
  private async drain(did: string, queue: QueuedWrite[]): Promise<void> {
    while (queue.length > 0) {
      const batch = takeBatch(queue);
      const deferred = await this.locks
        .run(did, () => this.commitBatch(did, batch))
        .catch((err: unknown) => {
          for (const item of batch) item.reject(err);
          return [];
        });
      queue.splice(0, batch.length, ...deferred);
      // Let requests that arrived during this commit join the next one.
      if (queue.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (this.queues.get(did) === queue) this.queues.delete(did);
  }
}
