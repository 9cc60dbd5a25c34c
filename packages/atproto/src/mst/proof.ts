/**
 * Blocks that prove things about a tree to someone who only trusts its root CID:
 * - `recordPathNodes`: the nodes from the root down to where a key is (or would be): proves a
 *   record's presence or absence (sync.getRecord).
 * - `coveringProof`: what a firehose consumer needs to verify a #commit by inversion: the path to
 *   each changed key plus the nodes holding its left and right neighbours, in the new tree.
 * Both follow the reference implementation's choice of nodes exactly, since the commit-proof
 * interop fixtures pin that set down.
 */
import type { Cid } from '../cid.ts';
import { BlockMap } from '../repo/block-store.ts';
import { contentFromEntries, type Entry, Leaf, type Mst, MstNode } from './tree.ts';
import { encodeNode } from './node.ts';

function findGtOrEqualLeafIndex(entries: readonly Entry[], key: string): number {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    if (e instanceof Leaf && e.key >= key) return i;
  }
  return entries.length;
}

/** Adds a node's block to `out`, from `extra` (fresh blocks), the store, or by encoding it. */
function addNode(tree: Mst, node: MstNode, out: BlockMap, extra?: BlockMap): void {
  tree.finalize();
  const cid = node.cid as Cid;
  if (out.has(cid)) return;
  const bytes = extra?.get(cid) ?? tree.store.getBlock(cid) ?? encodeNode(contentFromEntries(tree.entriesOf(node)));
  out.set(cid, bytes);
}

/** Nodes on the path from the root to `key`; the record's CID too when it is present. */
export function recordPathNodes(tree: Mst, key: string, extra?: BlockMap): { nodes: BlockMap; value: Cid | null } {
  const nodes = new BlockMap();
  let node: MstNode = tree.root;
  for (;;) {
    addNode(tree, node, nodes, extra);
    const entries = tree.entriesOf(node);
    const index = findGtOrEqualLeafIndex(entries, key);
    const found = entries[index];
    if (found instanceof Leaf && found.key === key) return { nodes, value: found.value };
    const prev = entries[index - 1];
    if (prev instanceof MstNode) node = prev;
    else return { nodes, value: null };
  }
}

/** The nodes needed to verify an operation on `key` by inverting it (see module comment). */
export function coveringProof(tree: Mst, key: string, out: BlockMap, extra?: BlockMap): void {
  proofForKey(tree, tree.root, key, out, extra);
  proofForLeftSibling(tree, tree.root, key, out, extra);
  proofForRightSibling(tree, tree.root, key, out, extra);
}

function proofForKey(tree: Mst, node: MstNode, key: string, out: BlockMap, extra?: BlockMap): boolean {
  const entries = tree.entriesOf(node);
  const index = findGtOrEqualLeafIndex(entries, key);
  const found = entries[index];
  if (!(found instanceof Leaf && found.key === key)) {
    const prev = entries[index - 1];
    // The key would sit in a leaf position here, so this node (and its ancestors) prove absence;
    // the reference stops without adding anything in that case, and so do we.
    if (!(prev instanceof MstNode)) return false;
    proofForKey(tree, prev, key, out, extra);
  }
  addNode(tree, node, out, extra);
  return true;
}

function proofForLeftSibling(tree: Mst, node: MstNode, key: string, out: BlockMap, extra?: BlockMap): void {
  const entries = tree.entriesOf(node);
  const index = findGtOrEqualLeafIndex(entries, key);
  const prev = entries[index - 1];
  if (prev instanceof MstNode) proofForLeftSibling(tree, prev, key, out, extra);
  addNode(tree, node, out, extra);
}

function proofForRightSibling(tree: Mst, node: MstNode, key: string, out: BlockMap, extra?: BlockMap): void {
  const entries = tree.entriesOf(node);
  const index = findGtOrEqualLeafIndex(entries, key);
  const found = entries[index] ?? entries[index - 1];
  if (found instanceof MstNode) {
    proofForRightSibling(tree, found, key, out, extra);
  } else if (found instanceof Leaf) {
    const neighbour = found.key === key ? entries[index + 1] : entries[index - 1];
    if (neighbour instanceof MstNode) proofForRightSibling(tree, neighbour, key, out, extra);
  }
  addNode(tree, node, out, extra);
}
