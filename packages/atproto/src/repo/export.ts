/**
 * Repository exports as CAR v1 streams:
 * - the whole repository (sync.getRepo) in the preferred order: the commit, then MST nodes in
 *   pre-order with each record right after the node entry that points to it, so a reader can
 *   verify and consume as it goes. Memory is bounded by the tree depth: nothing is collected.
 * - the blocks written after a rev (sync.getRepo?since=), read from a store that keeps a rev per
 *   block;
 * - record proofs (sync.getRecord): the commit, the nodes from the root to the key, and the
 *   record if it exists, which proves presence or absence against the signed root.
 */
import { type Cid, cidEquals, formatCid } from '../cid.ts';
import { type CarBlockInput, writeCar, writeCarBytes } from '../car.ts';
import { decodeNode } from '../mst/node.ts';
import { recordPathNodes } from '../mst/proof.ts';
import { Mst } from '../mst/tree.ts';
import type { BlockReader, RevisionedBlockSource } from './block-store.ts';
import { decodeCommit } from './commit.ts';
import { RepoError } from './errors.ts';

function need(
  store: BlockReader,
  cid: Cid,
  what: 'MissingNode' | 'MissingRecord' | 'MissingBlock',
  label: string,
): Uint8Array {
  const bytes = store.getBlock(cid);
  if (bytes === undefined) throw new RepoError(what, `${label} ${formatCid(cid)} is not in the block store`);
  return bytes;
}

/** Every block of the repository at `commitCid`, in export order (synchronous; no collection). */
export function* repoBlocks(store: BlockReader, commitCid: Cid): Generator<CarBlockInput> {
  const commitBytes = need(store, commitCid, 'MissingBlock', 'commit');
  yield { cid: commitCid, bytes: commitBytes };
  yield* treeBlocks(store, decodeCommit(commitBytes).data);
}

/** MST nodes in pre-order, each record right after the entry that points to it. */
export function* treeBlocks(store: BlockReader, root: Cid): Generator<CarBlockInput> {
  const bytes = need(store, root, 'MissingNode', 'MST node');
  yield { cid: root, bytes };
  const node = decodeNode(bytes);
  if (node.left !== null) yield* treeBlocks(store, node.left);
  for (let i = 0; i < node.keys.length; i++) {
    const value = node.values[i] as Cid;
    yield { cid: value, bytes: need(store, value, 'MissingRecord', `record ${node.keys[i]}`) };
    const right = node.rights[i];
    if (right) yield* treeBlocks(store, right);
  }
}

/** The whole repository as a CAR stream (chunks of about 64 KiB). */
export function exportRepo(store: BlockReader, commitCid: Cid): AsyncGenerator<Uint8Array> {
  return writeCar([commitCid], repoBlocks(store, commitCid));
}

/**
 * The blocks written after `since` (a rev), as a CAR whose root is the current commit; the
 * commit block comes first. This is what sync.getRepo returns with `since`.
 */
export function exportRepoSince(
  store: RevisionedBlockSource,
  commitCid: Cid,
  since: string,
): AsyncGenerator<Uint8Array> {
  function* blocks(): Generator<CarBlockInput> {
    yield { cid: commitCid, bytes: need(store, commitCid, 'MissingBlock', 'commit') };
    for (const block of store.blocksSince(since)) if (!cidEquals(block.cid, commitCid)) yield block;
  }
  return writeCar([commitCid], blocks());
}

/**
 * Blocks proving whether `<collection>/<rkey>` exists at `commitCid`: the commit, the MST nodes
 * from the root down to the key's position, and the record block when it exists.
 */
export function recordProofBlocks(
  store: BlockReader,
  commitCid: Cid,
  collection: string,
  rkey: string,
): CarBlockInput[] {
  const commitBytes = need(store, commitCid, 'MissingBlock', 'commit');
  const commit = decodeCommit(commitBytes);
  let path: ReturnType<typeof recordPathNodes>;
  try {
    path = recordPathNodes(Mst.load(store, commit.data), `${collection}/${rkey}`);
  } catch (err) {
    throw new RepoError('MissingNode', (err as Error).message, { cause: err });
  }
  const out: CarBlockInput[] = [{ cid: commitCid, bytes: commitBytes }, ...path.nodes.entries()];
  if (path.value !== null) out.push({ cid: path.value, bytes: need(store, path.value, 'MissingRecord', 'record') });
  return out;
}

/** `recordProofBlocks` as a CAR (small: a handful of blocks), rooted at the commit. */
export function recordProofCar(
  store: BlockReader,
  commitCid: Cid,
  collection: string,
  rkey: string,
): Promise<Uint8Array> {
  return writeCarBytes([commitCid], recordProofBlocks(store, commitCid, collection, rkey));
}
