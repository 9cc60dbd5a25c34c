/**
 * Difference between two versions of a tree: which node blocks the new tree adds, which ones it
 * no longer references, and the record operations (create / update / delete with the previous
 * CID) that turn the old key set into the new one.
 *
 * The walk goes layer by layer from the top. A node can only be shared between the two trees at
 * the same layer, and a shared node means its whole subtree is shared, so at each layer the nodes
 * present in both are dropped and only the rest are opened. The cost is proportional to the
 * changed paths, not to the size of the repository.
 */
import { type Cid, cidEquals } from '../cid.ts';
import { BlockMap, cidKey } from '../repo/block-store.ts';
import { contentFromEntries, Leaf, type Mst, MstNode } from './tree.ts';
import { encodeNode } from './node.ts';

export type RecordOp =
  | { action: 'create'; key: string; cid: Cid; prev: null }
  | { action: 'update'; key: string; cid: Cid; prev: Cid }
  | { action: 'delete'; key: string; cid: null; prev: Cid };

export interface MstDiff {
  /** Node blocks of the new tree that the old tree does not have. */
  newNodes: BlockMap;
  /** Node CIDs of the old tree that the new tree does not reference. */
  removedNodes: Cid[];
  /** Record operations in key order. */
  ops: RecordOp[];
}

/**
 * Diffs `next` against `prev` (null = empty). Both trees must be readable (new nodes finalized or
 * not; this finalizes them). `blocks` may carry the bytes of freshly finalized nodes so they are
 * not encoded again.
 */
export function diffTrees(prev: Mst | null, next: Mst, blocks?: BlockMap): MstDiff {
  next.finalize();
  prev?.finalize();
  const newNodes = new BlockMap();
  const removedNodes: Cid[] = [];
  const oldLeaves = new Map<string, Cid>();
  const newLeaves = new Map<string, Cid>();

  let newLayer: MstNode[] = [next.root];
  let oldLayer: MstNode[] = prev ? [prev.root] : [];
  let layer = Math.max(next.root.layer, prev ? prev.root.layer : 0);
  while (layer >= 0 && (newLayer.length > 0 || oldLayer.length > 0)) {
    const newHere = newLayer.filter((n) => n.layer === layer);
    const oldHere = oldLayer.filter((n) => n.layer === layer);
    const newKeys = new Set(newHere.map((n) => cidKey(n.cid as Cid)));
    const oldKeys = new Set(oldHere.map((n) => cidKey(n.cid as Cid)));
    const newBelow = newLayer.filter((n) => n.layer !== layer);
    const oldBelow = oldLayer.filter((n) => n.layer !== layer);
    for (const node of newHere) {
      const cid = node.cid as Cid;
      if (oldKeys.has(cidKey(cid))) continue;
      const entries = next.entriesOf(node);
      newNodes.set(cid, blocks?.get(cid) ?? next.store.getBlock(cid) ?? encodeNode(contentFromEntries(entries)));
      for (const e of entries) {
        if (e instanceof Leaf) newLeaves.set(e.key, e.value);
        else newBelow.push(e);
      }
    }
    for (const node of oldHere) {
      const cid = node.cid as Cid;
      if (newKeys.has(cidKey(cid))) continue;
      removedNodes.push(cid);
      for (const e of (prev as Mst).entriesOf(node)) {
        if (e instanceof Leaf) oldLeaves.set(e.key, e.value);
        else oldBelow.push(e);
      }
    }
    newLayer = newBelow;
    oldLayer = oldBelow;
    layer--;
  }

  const ops: RecordOp[] = [];
  for (const [key, cid] of newLeaves) {
    const before = oldLeaves.get(key);
    if (before === undefined) ops.push({ action: 'create', key, cid, prev: null });
    else if (!cidEquals(before, cid)) ops.push({ action: 'update', key, cid, prev: before });
  }
  for (const [key, cid] of oldLeaves) {
    if (!newLeaves.has(key)) ops.push({ action: 'delete', key, cid: null, prev: cid });
  }
  ops.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { newNodes, removedNodes, ops };
}
