/**
 * The blob phase: the new server's listMissingBlobs is the to-do list (so a rerun starts exactly
 * where the last one stopped, with no local bookkeeping to trust), feeding a pool of parallel
 * transfers getBlob -> uploadBlob. With a backup, BlobPrefetch does the downloads (it started
 * while the repository was importing, and a run that was killed may have stored some already)
 * and each blob is uploaded from the backup; a blob it cannot get, or every blob without a
 * backup, comes from the old server in the same transfer and goes into the backup on the way.
 * Small blobs travel as whole bodies with a Content-Length, large ones stream; the bytes in flight
 * are capped either way (ByteBudget).
 *
 * The pool is adaptive: a 429 or a 5xx halves it (the server is struggling or rationing), a run
 * of successes grows it back by one up to the configured width. A 429 also pauses every request
 * to that server until its RateLimit-Reset/Retry-After.
 */
import { cidMatches, parseCid } from '@portage/atproto/cid';
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import type { BackupSink } from './backup.ts';
import type { EventSink, MissingBlob } from './events.ts';
import { countingStream, type ProgressTracker } from './progress.ts';
import { publicRead } from './public-reads.ts';
import { BudgetSpent, describeError, withRetry } from './retry.ts';
import type { PdsSession } from './session.ts';

export class AdaptivePool {
  readonly max: number;
  limit: number;
  #active = 0;
  #streak = 0;
  #waiters: (() => void)[] = [];
  /** Urgent tasks waiting for a slot, first come first served, all ahead of #waiters. */
  #urgentWaiters: (() => void)[] = [];
  #idle: (() => void)[] = [];

  constructor(max: number) {
    this.max = Math.max(1, Math.floor(max));
    this.limit = this.max;
  }

  get active(): number {
    return this.#active;
  }

  /**
   * Waits for a free slot, then starts the task without waiting for it to finish. An `urgent` task
   * takes the next free slot ahead of the tasks already waiting.
   */
  async add(task: () => Promise<void>, opts: { urgent?: boolean } = {}): Promise<void> {
    while (this.#active >= this.limit) {
      await new Promise<void>((r) => (opts.urgent ? this.#urgentWaiters : this.#waiters).push(r));
    }
    this.#active++;
    void task().finally(() => {
      this.#active--;
      (this.#urgentWaiters.shift() ?? this.#waiters.shift())?.();
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
      (this.#urgentWaiters.shift() ?? this.#waiters.shift())?.();
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
  /**
   * Bytes of blobs in flight at once (default 8 MB: eight typical images, or one 5 MB video; more
   * would not move them faster, and the memory guard's allowance for garbage is worth more).
   */
  inFlightBytes?: number;
  /**
   * Downloads into the backup (this run's BlobPrefetch): blobs it holds or gets are uploaded from
   * the backup (or from its hands, when the upload was waiting for the download); the rest come
   * straight from the old server.
   */
  prefetch?: Pick<BlobPrefetch, 'fetched'>;
}

/** A blob the backup holds, as the blob phase uploads it. */
export interface StoredCopy {
  contentType: string;
  /**
   * True when this run stored it: writeBlob checked those bytes against the CID moments ago, so
   * they are not hashed again before the upload. A copy from an earlier run is checked first.
   */
  checked: boolean;
  /**
   * The bytes, when the upload was waiting for this very download: handed over rather than read
   * back from the backup. They count against the prefetch's in-flight budget until `release`.
   */
  bytes?: Uint8Array;
  /** Ends the caller's use of `bytes` (a no-op without them); call it exactly once. */
  release(): void;
}

/** A blob upload that ended with another CID: the bytes were damaged on the way; try again. */
class DamagedTransfer extends Error {
  override name = 'DamagedTransfer';
  readonly code = 'DamagedTransfer';
}

const PAGE = 500;
const MAX_PASSES = 3;
const DEFAULT_IN_FLIGHT_BYTES = 8 * 1024 * 1024;
/**
 * Blobs up to this size are read whole and sent with a Content-Length: a streamed request body
 * goes out chunk-encoded, one write per chunk plus its framing, which costs more than the copy
 * for the typical image. Larger ones stream, so memory stays bounded by the in-flight budget.
 */
const WHOLE_BODY_BYTES = 4 * 1024 * 1024;

/** One page of the blobs the new server's records reference and it does not hold. */
export function missingBlobsPage(
  neu: PdsSession,
  cursor: string | undefined,
): Promise<{ cursor?: string; blobs: { cid: string; recordUri?: string }[] }> {
  return neu.query('com.atproto.repo.listMissingBlobs', { limit: PAGE, cursor });
}

/**
 * Copies every blob the new server reports missing; returns how many arrived. Throws BudgetSpent
 * (after the transfers under way end) when a server's budget refills only later than a run waits.
 */
export async function copyMissingBlobs(ctx: BlobCopyContext): Promise<number> {
  const pool = new AdaptivePool(ctx.concurrency);
  const budget = new ByteBudget(ctx.inFlightBytes ?? DEFAULT_IN_FLIGHT_BYTES);
  let copied = 0;
  let spent: BudgetSpent | undefined;
  for (let pass = 1; pass <= MAX_PASSES; pass++) {
    let cursor: string | undefined;
    let started = 0;
    for (;;) {
      const page = await missingBlobsPage(ctx.neu, cursor);
      for (const { cid, recordUri } of page.blobs) {
        if (spent) break;
        if (ctx.failed.has(cid)) continue;
        started++;
        await pool.add(async () => {
          try {
            await transferBlob(ctx, pool, budget, cid);
            copied++;
            ctx.progress.addDone();
          } catch (err) {
            // Not this blob's failure: the server's budget is spent; the run stops after the pool drains.
            if (err instanceof BudgetSpent) {
              spent = spent && spent.until >= err.until ? spent : err;
              return;
            }
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
      if (spent || !page.cursor || page.blobs.length === 0) break;
      cursor = page.cursor;
    }
    await pool.drain();
    if (spent) throw spent;
    // A new pass picks up anything the list showed while uploads were in flight.
    if (started === 0) break;
  }
  return copied;
}

async function transferBlob(ctx: BlobCopyContext, pool: AdaptivePool, budget: ByteBudget, cid: string): Promise<void> {
  const backup = ctx.backup;
  const stored = !backup ? undefined : ctx.prefetch ? await ctx.prefetch.fetched(cid) : await storedCopy(backup, cid);
  try {
    await transferBlobAttempts(ctx, pool, budget, cid, stored);
  } finally {
    stored?.release();
  }
}

async function storedCopy(backup: BackupSink, cid: string): Promise<StoredCopy | undefined> {
  const contentType = await backup.blobContentType?.(cid).catch(() => undefined);
  return contentType === undefined ? undefined : { contentType, checked: false, release: () => {} };
}

async function transferBlobAttempts(
  ctx: BlobCopyContext,
  pool: AdaptivePool,
  budget: ByteBudget,
  cid: string,
  stored: StoredCopy | undefined,
): Promise<void> {
  const backup = ctx.backup;
  // Cleared when the stored copy cannot be used (gone, or its bytes do not match the CID).
  let useStored = stored !== undefined;
  let storedCopyDamaged = false;
  await withRetry(
    async () => {
      if (useStored) {
        await ctx.neu.gate.wait();
        const sent = await uploadFromBackup(ctx, budget, cid, stored!).catch((err: unknown) => {
          if (!(err instanceof DamagedTransfer)) throw err;
          storedCopyDamaged = true;
          return false;
        });
        if (sent) return void pool.succeeded();
        useStored = false;
      }
      await Promise.all([ctx.old.gate.wait(), ctx.neu.gate.wait()]);
      const { download, length, contentType, granted } = await openDownload(ctx.old, ctx.did, cid, budget);
      try {
        const saveToBackup = backup !== undefined && (storedCopyDamaged || !(await backup.hasBlob(cid)));
        let backupWrite: Promise<void> | undefined;
        let body: Uint8Array | ReadableStream<Uint8Array>;
        if (length > 0 && length <= WHOLE_BODY_BYTES) {
          body = new Uint8Array(await download.arrayBuffer());
          ctx.progress.addBytes(body.byteLength);
          if (saveToBackup) backupWrite = backup.writeBlob(cid, body, contentType);
        } else {
          body = download.body.pipeThrough(countingStream((n) => ctx.progress.addBytes(n)));
          if (saveToBackup) {
            const [toUpload, toBackup] = body.tee();
            body = toUpload;
            backupWrite = backup.writeBlob(cid, toBackup, contentType);
          }
        }
        // The backup step fetches whatever is still missing from the backup later.
        backupWrite = backupWrite?.catch(() => {});
        const stored = await upload(ctx, body, contentType);
        await backupWrite;
        if (stored !== cid) throw new DamagedTransfer(`blob ${cid} arrived as ${String(stored)} (damaged on the way)`);
        pool.succeeded();
      } finally {
        budget.release(granted);
      }
    },
    {
      attempts: 7,
      gateFor: (err) =>
        err instanceof XrpcClientError && err.nsid === 'com.atproto.sync.getBlob' ? ctx.old.gate : ctx.neu.gate,
      onRetry: (err) => {
        if (isOverload(err)) pool.shrink();
        if (err instanceof XrpcClientError && err.status === 429) {
          // The pause belongs to whichever server said it; withRetry already sleeps this task.
          const gate = err.nsid === 'com.atproto.sync.getBlob' ? ctx.old.gate : ctx.neu.gate;
          gate.pauseFor(1000);
        }
      },
    },
  );
}

/**
 * Starts a blob's download from the old server and reserves its size in the byte budget (the
 * caller releases `granted`), with the content type it came with (octet-stream when unsaid).
 * Unknown sizes count as 1 MB: blob answers normally say their length.
 */
async function openDownload(
  old: PdsSession,
  did: string,
  cid: string,
  budget: ByteBudget,
): Promise<{
  download: Response & { body: ReadableStream<Uint8Array> };
  length: number;
  contentType: string;
  granted: number;
}> {
  const download = await publicRead(old, 'com.atproto.sync.getBlob', {
    method: 'GET',
    params: { did, cid },
    timeoutMs: 60_000,
  });
  old.gate.observe(download.headers);
  if (!download.body) throw new DamagedTransfer(`the old server sent blob ${cid} without a body`);
  const length = Number(download.headers.get('content-length')) || 0;
  const contentType = download.headers.get('content-type') || 'application/octet-stream';
  const granted = await budget.acquire(length || 1024 * 1024);
  return { download: download as Response & { body: ReadableStream<Uint8Array> }, length, contentType, granted };
}

/**
 * Uploads the backup's copy (or the bytes the prefetch handed over); false when the backup does
 * not hold it after all. A copy from an earlier run, read whole, is checked against its CID
 * first, so damaged bytes are never sent; a large one streams from storage, and the CID the new
 * server computes is the check (the backup only shows a blob once it was written whole and
 * matched its CID, so this catches damage done later).
 */
async function uploadFromBackup(
  ctx: BlobCopyContext,
  budget: ByteBudget,
  cid: string,
  copy: StoredCopy,
): Promise<boolean> {
  if (copy.bytes) return sendStored(ctx, cid, copy.bytes, copy.contentType);
  const stored = await ctx.backup!.readBlob(cid);
  if (stored === undefined) return false;
  // Reserved before reading: eight uploads of 4 MB read at once would pass the budget otherwise.
  const granted = await budget.acquire(stored.size);
  try {
    const body = await stored.read();
    if (body === undefined) return false;
    if (body instanceof Uint8Array && !copy.checked && !bytesMatch(cid, body)) {
      throw new DamagedTransfer(`the backup's copy of blob ${cid} does not match its CID`);
    }
    return await sendStored(ctx, cid, body, copy.contentType);
  } finally {
    budget.release(granted);
  }
}

async function sendStored(
  ctx: BlobCopyContext,
  cid: string,
  body: Uint8Array | Blob,
  contentType: string,
): Promise<true> {
  const uploaded = await upload(ctx, body, contentType);
  if (uploaded !== cid) {
    throw new DamagedTransfer(`the backup's copy of blob ${cid} uploaded as ${String(uploaded)}`);
  }
  ctx.progress.addBytes(body instanceof Uint8Array ? body.byteLength : body.size);
  return true;
}

function bytesMatch(cid: string, bytes: Uint8Array): boolean {
  try {
    return cidMatches(parseCid(cid), bytes);
  } catch {
    return false;
  }
}

/** uploadBlob; resolves to the CID the new server computed. */
async function upload(
  ctx: BlobCopyContext,
  body: Uint8Array | Blob | ReadableStream<Uint8Array>,
  contentType: string,
): Promise<string | undefined> {
  const res = await ctx.neu.request('com.atproto.repo.uploadBlob', { method: 'POST', body, encoding: contentType });
  ctx.neu.gate.observe(res.headers);
  const result = (await res.json()) as { blob?: { ref?: { $link?: string } } };
  return result.blob?.ref?.$link;
}

/**
 * Fills the backup from the old server, in the old server's listBlobs order, from the moment the
 * repository is stored (the old server's part of the repo step is over then) until the blob phase
 * ends. While the new server imports, this is all that happens; in the blob phase it becomes the
 * download half of a two-stage pipeline: the blob phase asks `fetched(cid)` for each blob it
 * uploads, which returns at once for a blob already here, waits for one under way, and puts any
 * other at the head of the queue. So the old server always has `concurrency` downloads in flight
 * and the new one `concurrency` uploads, and neither waits for the other's round trips. A small
 * blob the blob phase was waiting for is handed over in memory as well as stored: reading it back
 * and hashing it again would cost the client more than the download did.
 * Each blob's content type is kept with it (in memory, and in the backup for a later run).
 * Everything here is best effort: a blob it does not get, the blob phase fetches itself.
 */
export class BlobPrefetch {
  readonly #ctx: { did: string; old: PdsSession; backup: BackupSink };
  readonly #pool: AdaptivePool;
  readonly #budget: ByteBudget;
  /** Content types of the blobs this prefetch stored, by CID. */
  readonly #types = new Map<string, string>();
  /** Downloads queued or under way, settled when they end either way. */
  readonly #pending = new Map<string, Promise<void>>();
  /** Blobs this prefetch tried and could not get (left to the blob phase), with the reason. */
  readonly #failed = new Map<string, string>();
  /** Downloads the blob phase is waiting for: their bytes are handed over (#handoffs). */
  readonly #awaited = new Set<string>();
  /** Bytes of awaited downloads, from the download's end until `fetched` passes them on. */
  readonly #handoffs = new Map<string, { bytes: Uint8Array; release: () => void }>();
  readonly #listing: Promise<void>;
  #listingError: unknown;
  /** Blobs the old server listed so far. */
  #listed = 0;
  #stopped = false;

  constructor(ctx: { did: string; old: PdsSession; backup: BackupSink; concurrency: number; inFlightBytes?: number }) {
    this.#ctx = ctx;
    this.#pool = new AdaptivePool(ctx.concurrency);
    this.#budget = new ByteBudget(ctx.inFlightBytes ?? DEFAULT_IN_FLIGHT_BYTES);
    this.#listing = this.#list().catch((err: unknown) => {
      this.#listingError = err;
    });
  }

  /**
   * `cid` once the backup holds it (stored by this prefetch or an earlier run), waiting for its
   * download if needed; undefined when the prefetch did not get it. With its content type, whether
   * this run checked the stored bytes, and the bytes themselves when the caller waited for their
   * download. The caller must `release` it.
   */
  async fetched(cid: string): Promise<StoredCopy | undefined> {
    if (!this.#types.has(cid)) {
      const earlier = await this.#ctx.backup.blobContentType?.(cid).catch(() => undefined);
      // Unless a download of this run stored it while the backup was asked (then it is checked).
      if (earlier !== undefined && !this.#types.has(cid)) {
        return { contentType: earlier, checked: false, release: () => {} };
      }
    }
    if (!this.#types.has(cid)) {
      const pending = this.#pending.get(cid);
      if (!pending && (this.#stopped || this.#failed.has(cid))) return undefined;
      this.#awaited.add(cid);
      try {
        await (pending ?? this.#queue(cid, true).done);
      } finally {
        this.#awaited.delete(cid);
      }
    }
    const contentType = this.#types.get(cid);
    if (contentType === undefined) return undefined;
    const handoff = this.#handoffs.get(cid);
    this.#handoffs.delete(cid);
    return { contentType, checked: true, bytes: handoff?.bytes, release: handoff?.release ?? (() => {}) };
  }

  /**
   * Waits until every blob the old server lists is in the backup or has failed: the backup step's
   * way to make the backup whole, with the same parallel, budgeted downloads. Throws when the old
   * server's listing failed; `failed` gives each blob not stored with the reason.
   */
  async complete(): Promise<{ listed: number; fetched: number; failed: Map<string, string> }> {
    await this.#listing;
    await this.#pool.drain();
    if (this.#listingError !== undefined) throw this.#listingError;
    return { listed: this.#listed, fetched: this.#types.size, failed: this.#failed };
  }

  /** Starts no more downloads and waits for those under way. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#listing;
    await this.#pool.drain();
    for (const { release } of this.#handoffs.values()) release();
    this.#handoffs.clear();
  }

  async #list(): Promise<void> {
    const { old, did, backup } = this.#ctx;
    let cursor: string | undefined;
    do {
      const page = await old.query<{ cids: string[]; cursor?: string }>(
        'com.atproto.sync.listBlobs',
        { did, limit: 1000, cursor },
        { attempts: 2 },
      );
      for (const cid of page.cids) {
        if (this.#stopped) return;
        this.#listed++;
        if (this.#inHand(cid) || (await backup.hasBlob(cid))) continue;
        // The blob phase may have asked for it while the backup was checked.
        if (this.#inHand(cid)) continue;
        await this.#queue(cid, false).started;
      }
      cursor = page.cids.length > 0 ? page.cursor : undefined;
    } while (cursor && !this.#stopped);
  }

  /**
   * True for a blob this prefetch stored, is downloading, or gave up on: a failed blob is the blob
   * phase's to fetch, so the listing must not queue it again behind that phase's back.
   */
  #inHand(cid: string): boolean {
    return this.#pending.has(cid) || this.#types.has(cid) || this.#failed.has(cid);
  }

  /** Queues one download: `started` once it has a slot, `done` when it ended either way. */
  #queue(cid: string, urgent: boolean): { started: Promise<void>; done: Promise<void> } {
    let finished!: () => void;
    const done = new Promise<void>((r) => (finished = r));
    this.#pending.set(cid, done);
    const task = async () => {
      try {
        if (this.#stopped) return;
        await this.#fetch(cid);
        this.#pool.succeeded();
      } catch (err) {
        this.#failed.set(cid, blobFailureReason(err));
        if (isOverload(err)) this.#pool.shrink();
      } finally {
        this.#pending.delete(cid);
        finished();
      }
    };
    return { started: this.#pool.add(task, { urgent }), done };
  }

  async #fetch(cid: string): Promise<void> {
    const { old, did, backup } = this.#ctx;
    await withRetry(
      async () => {
        const { download: res, length, contentType, granted } = await openDownload(old, did, cid, this.#budget);
        let handedOver = false;
        try {
          const body = length > 0 && length <= WHOLE_BODY_BYTES ? new Uint8Array(await res.arrayBuffer()) : res.body;
          await backup.writeBlob(cid, body, contentType);
          if (body instanceof Uint8Array && this.#awaited.has(cid)) {
            // Its budget goes with it: the bytes stay counted until the upload is done with them.
            let released = false;
            const release = () => {
              if (!released) this.#budget.release(granted);
              released = true;
            };
            this.#handoffs.set(cid, { bytes: body, release });
            handedOver = true;
          }
        } finally {
          if (!handedOver) this.#budget.release(granted);
        }
        this.#types.set(cid, contentType);
      },
      { attempts: 2, gate: old.gate },
    );
  }
}

/** A 429 or a 5xx: the server is rationing or struggling, so the pool narrows. */
function isOverload(err: unknown): boolean {
  return err instanceof XrpcClientError && (err.status === 429 || err.status >= 500);
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
