/**
 * Moves every permanent blob from one store to another, as `portage blobs move` does while the
 * server keeps running (its MovingBlobStore reads from both meanwhile). Each blob is streamed
 * into the target through the target's own upload path, which hashes it: it is made permanent
 * there only when the hash gives the CID it is stored under, and only then removed from the
 * source. A run stopped part-way loses nothing, and a new run resumes: blobs already in the
 * target are just removed from the source. Passes repeat until one finds nothing left, so
 * blobs the server made permanent in the source meanwhile move too.
 */
import { formatCid, parseCid } from '@portage/atproto/cid';
import type { BlobStore } from './blobstore.ts';

export interface MoveProgress {
  moved: number;
  movedBytes: number;
  /** Found already in the target (an earlier run's), removed from the source. */
  alreadyThere: number;
  /** Blobs whose bytes do not hash to their CID (left where they are), or that failed to copy. */
  failed: { did: string; cid: string; reason: string }[];
}

export interface MoveOptions {
  /** Blobs copied at once. */
  concurrency?: number;
  onBlob?(progress: MoveProgress, blob: { did: string; cid: string; size: number }): void;
}

const MAX_PASSES = 20;

export async function moveBlobs(from: BlobStore, to: BlobStore, opts: MoveOptions = {}): Promise<MoveProgress> {
  const progress: MoveProgress = { moved: 0, movedBytes: 0, alreadyThere: 0, failed: [] };
  const failedKeys = new Set<string>();
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    let touched = 0;
    const inFlight = new Set<Promise<void>>();
    for await (const blob of from.listPermanent()) {
      if (failedKeys.has(`${blob.did}/${blob.cid}`)) continue;
      touched++;
      const job = moveOne(from, to, blob, progress)
        .catch((err: unknown) => {
          failedKeys.add(`${blob.did}/${blob.cid}`);
          progress.failed.push({ ...blob, reason: err instanceof Error ? err.message : String(err) });
        })
        .then(() => {
          inFlight.delete(job);
          opts.onBlob?.(progress, blob);
        });
      inFlight.add(job);
      if (inFlight.size >= (opts.concurrency ?? 4)) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (touched === 0) break;
  }
  return progress;
}

async function moveOne(
  from: BlobStore,
  to: BlobStore,
  blob: { did: string; cid: string },
  progress: MoveProgress,
): Promise<void> {
  const cid = parseCid(blob.cid);
  if (await to.hasPermanent(blob.did, cid)) {
    await from.delete(blob.did, [cid]);
    progress.alreadyThere++;
    return;
  }
  const read = await from.read(blob.did, cid);
  if (!read) return; // deleted meanwhile
  const stored = await to.putTemp(blob.did, read.stream, Number.MAX_SAFE_INTEGER);
  if (formatCid(stored.cid) !== blob.cid) {
    await to.deleteTemp(blob.did, stored.tempKey);
    throw new Error(`its bytes hash to ${formatCid(stored.cid)}, not to the CID it is stored under`);
  }
  await to.makePermanent(blob.did, stored.tempKey, cid);
  await from.delete(blob.did, [cid]);
  progress.moved++;
  progress.movedBytes += stored.size;
}
