/**
 * Keeping a backup's repository current without downloading it again: the server's export of
 * what changed since the stored revision (`sync.getRepo` with `since`) is laid over the stored
 * CAR, and the repository is written out whole again from its new commit, so the stored file
 * stays a complete, ordinary export (blocks no longer reachable from the new commit are left out).
 * Browser-safe.
 */
import { type CarSource, readCar, toReadableStream, writeCar } from '@portage/atproto/car';
import { type Cid, formatCid } from '@portage/atproto/cid';
import { BlockMap } from '@portage/atproto/repo/block-store';
import { decodeCommit } from '@portage/atproto/repo/commit';
import { repoBlocks } from '@portage/atproto/repo/export';

/** The commit a stored repository CAR ends at: its CID and revision. */
export async function readRepoHead(car: CarSource): Promise<{ commit: string; rev: string; did: string }> {
  const reader = await readCar(car, { requireRoot: true });
  const root = reader.roots[0]!;
  for await (const block of reader.blocks) {
    if (formatCid(block.cid) !== formatCid(root)) continue;
    const commit = decodeCommit(block.bytes);
    return { commit: formatCid(root), rev: commit.rev, did: commit.did };
  }
  throw new Error(`the repository CAR does not hold its commit ${formatCid(root)}`);
}

export interface MergedRepo {
  commit: string;
  rev: string;
  /** The whole repository at the new commit, as a CAR. */
  car: ReadableStream<Uint8Array>;
}

/**
 * The stored repository with the changes since its revision laid over it. Throws (before
 * anything is written) when the two do not make a whole repository together, e.g. when the
 * server's diff starts later than the stored revision: the caller then fetches the whole export.
 */
export async function mergeRepoDiff(stored: CarSource, diff: CarSource, did: string): Promise<MergedRepo> {
  const blocks = new BlockMap();
  const base = await readCar(stored, { requireRoot: true });
  await base.forEachBlock((b) => blocks.set(b.cid, b.bytes));
  const changes = await readCar(diff, { requireRoot: true });
  await changes.forEachBlock((b) => blocks.set(b.cid, b.bytes));
  const root: Cid = changes.roots[0]!;
  const commitBytes = blocks.get(root);
  if (!commitBytes) throw new Error(`the changes do not hold their commit ${formatCid(root)}`);
  const commit = decodeCommit(commitBytes);
  if (commit.did !== did) throw new Error(`the changes are a commit of ${commit.did}, not of ${did}`);
  const store = { getBlock: (cid: Cid) => blocks.get(cid) };
  // Walked once before writing: a block missing anywhere in the tree throws here, not halfway
  // through the new file.
  for (const block of repoBlocks(store, root)) void block;
  return { commit: formatCid(root), rev: commit.rev, car: toReadableStream(writeCar([root], repoBlocks(store, root))) };
}
