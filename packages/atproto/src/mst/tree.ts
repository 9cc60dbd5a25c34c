/**
 * The Merkle Search Tree of a repository (https://atproto.com/specs/repository#mst-structure):
 * an ordered map from `<collection>/<rkey>` to record CIDs whose shape depends only on its keys,
 * so two parties holding the same records compute the same root CID.
 *
 * `Mst` is an immutable value. Every change returns a new `Mst` that shares all untouched nodes
 * with the old one (path copying), so a writer can keep the previous state for diffing and for
 * `prevData` at no cost. Nodes are loaded lazily from a synchronous `BlockReader` and keep their
 * decoded entries once loaded: a tree that stays in memory between commits is its own node cache.
 * New nodes are not hashed until `finalize()`, which encodes each new node exactly once.
 */
import { type Cid, cidEquals, cidForCbor, formatCid } from '../cid.ts';
import { BlockMap, type BlockReader } from '../repo/block-store.ts';
import { asciiKeyHeight, assertValidMstKey, MstError } from './keys.ts';
import { decodeNode, encodeNode, type NodeContent } from './node.ts';

/** A key/value pair stored in a node. */
export class Leaf {
  readonly key: string;
  readonly value: Cid;
  constructor(key: string, value: Cid) {
    this.key = key;
    this.value = value;
  }
}

export type Entry = Leaf | MstNode;

/**
 * One node. `entries` alternate between subtrees and leaves (never two subtrees in a row);
 * `cid` is null for a node created in memory and not yet finalized.
 */
export class MstNode {
  readonly layer: number;
  cid: Cid | null;
  entries: Entry[] | null;
  constructor(layer: number, cid: Cid | null, entries: Entry[] | null) {
    this.layer = layer;
    this.cid = cid;
    this.entries = entries;
  }
}

export interface ListOptions {
  /** Only keys strictly greater than this. */
  after?: string;
  /** Only keys strictly less than this. */
  before?: string;
  /** Walk from the highest key down. */
  reverse?: boolean;
}

function missing(cid: Cid, what: string): MstError {
  return new MstError('MissingBlock', `${what} ${formatCid(cid)} is not in the block store`);
}

/** Decodes a stored node into in-memory entries; children become unloaded `MstNode`s. */
export function entriesFromContent(content: NodeContent, layer: number): Entry[] {
  const entries: Entry[] = [];
  if (content.left !== null) entries.push(new MstNode(layer - 1, content.left, null));
  for (let i = 0; i < content.keys.length; i++) {
    entries.push(new Leaf(content.keys[i] as string, content.values[i] as Cid));
    const right = content.rights[i];
    if (right) entries.push(new MstNode(layer - 1, right, null));
  }
  return entries;
}

/** The inverse of `entriesFromContent`; every child must already have a CID. */
export function contentFromEntries(entries: readonly Entry[]): NodeContent {
  const keys: string[] = [];
  const values: Cid[] = [];
  const rights: (Cid | null)[] = [];
  let left: Cid | null = null;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as Entry;
    if (entry instanceof Leaf) {
      keys.push(entry.key);
      values.push(entry.value);
      rights.push(null);
    } else {
      if (entry.cid === null) throw new MstError('InternalError', 'child node has not been finalized');
      if (keys.length === 0) left = entry.cid;
      else rights[rights.length - 1] = entry.cid;
    }
  }
  return { left, keys, values, rights };
}

function findGtOrEqualLeafIndex(entries: readonly Entry[], key: string): number {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    if (e instanceof Leaf && e.key >= key) return i;
  }
  return entries.length;
}

const EMPTY_NODE_BYTES = encodeNode({ left: null, keys: [], values: [], rights: [] });

export class Mst {
  readonly store: BlockReader;
  readonly root: MstNode;

  constructor(store: BlockReader, root: MstNode) {
    this.store = store;
    this.root = root;
  }

  /** An empty tree. */
  static create(store: BlockReader): Mst {
    return new Mst(store, new MstNode(0, null, []));
  }

  /** The tree whose root node is `cid`; loads the root (to learn its layer) but nothing below. */
  static load(store: BlockReader, cid: Cid): Mst {
    const bytes = store.getBlock(cid);
    if (bytes === undefined) throw missing(cid, 'MST root');
    const content = decodeNode(bytes);
    const layer = Mst.#layerOf(store, content);
    return new Mst(store, new MstNode(layer, cid, entriesFromContent(content, layer)));
  }

  // The root's layer is the height of its keys; a root without keys (only a left subtree, which
  // a canonical tree never has, but be lenient) sits one above its child.
  static #layerOf(store: BlockReader, content: NodeContent): number {
    if (content.keys.length > 0) return asciiKeyHeight(content.keys[0] as string);
    if (content.left === null) return 0;
    const bytes = store.getBlock(content.left);
    if (bytes === undefined) throw missing(content.left, 'MST node');
    return Mst.#layerOf(store, decodeNode(bytes)) + 1;
  }

  /** Entries of a node, loading it from the store the first time. */
  entriesOf(node: MstNode): Entry[] {
    if (node.entries !== null) return node.entries;
    const cid = node.cid as Cid;
    const bytes = this.store.getBlock(cid);
    if (bytes === undefined) throw missing(cid, 'MST node');
    node.entries = entriesFromContent(decodeNode(bytes), node.layer);
    return node.entries;
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  get(key: string): Cid | null {
    let node = this.root;
    for (;;) {
      const entries = this.entriesOf(node);
      const index = findGtOrEqualLeafIndex(entries, key);
      const found = entries[index];
      if (found instanceof Leaf && found.key === key) return found.value;
      const prev = entries[index - 1];
      if (prev instanceof MstNode) node = prev;
      else return null;
    }
  }

  /** Leaves in key order (or reverse), restricted to the open interval (after, before). */
  *list(options: ListOptions = {}): Generator<Leaf> {
    const { after, before, reverse = false } = options;
    if (reverse) yield* this.#walkReverse(this.root, after, before);
    else yield* this.#walkForward(this.root, after, before);
  }

  /** Records of one collection, for listRecords: `cursor` is the last rkey already returned. */
  *listCollection(collection: string, options: { cursor?: string; reverse?: boolean } = {}): Generator<Leaf> {
    const prefix = `${collection}/`;
    // '0' is the character after '/', so `${collection}0` bounds the collection from above.
    const upper = `${collection}0`;
    if (options.reverse) {
      yield* this.list({
        after: prefix,
        before: options.cursor !== undefined ? prefix + options.cursor : upper,
        reverse: true,
      });
    } else {
      yield* this.list({ after: options.cursor !== undefined ? prefix + options.cursor : prefix, before: upper });
    }
  }

  // Returns true when the walk passed `before` and must stop.
  *#walkForward(node: MstNode, after: string | undefined, before: string | undefined): Generator<Leaf, boolean> {
    const entries = this.entriesOf(node);
    let start = 0;
    if (after !== undefined) {
      // Skip whole entries that lie at or below `after`; the subtree just before the first larger
      // leaf may still hold keys above `after`.
      start = findGtOrEqualLeafIndex(entries, after);
      const atStart = entries[start];
      if (atStart instanceof Leaf && atStart.key === after) start++;
      else if (entries[start - 1] instanceof MstNode) start--;
    }
    for (let i = start; i < entries.length; i++) {
      const entry = entries[i] as Entry;
      if (entry instanceof Leaf) {
        if (before !== undefined && entry.key >= before) return true;
        if (after !== undefined && entry.key <= after) continue;
        yield entry;
      } else if (yield* this.#walkForward(entry, after, before)) return true;
    }
    return false;
  }

  *#walkReverse(node: MstNode, after: string | undefined, before: string | undefined): Generator<Leaf, boolean> {
    const entries = this.entriesOf(node);
    let start = entries.length - 1;
    if (before !== undefined) {
      const index = findGtOrEqualLeafIndex(entries, before);
      // Everything from `index` on is >= before; the subtree before it may straddle.
      start = index - 1;
    }
    for (let i = start; i >= 0; i--) {
      const entry = entries[i] as Entry;
      if (entry instanceof Leaf) {
        if (after !== undefined && entry.key <= after) return true;
        if (before !== undefined && entry.key >= before) continue;
        yield entry;
      } else if (yield* this.#walkReverse(entry, after, before)) return true;
    }
    return false;
  }

  /** Number of records (walks the whole tree). */
  count(): number {
    let n = 0;
    for (const _ of this.list()) n++;
    return n;
  }

  // ---------------------------------------------------------------------------------------------
  // Writes (each returns a new tree)

  add(key: string, value: Cid): Mst {
    assertValidMstKey(key);
    const height = asciiKeyHeight(key);
    let root = this.root;
    if (this.entriesOf(root).length === 0 && root.layer !== 0) root = new MstNode(0, null, []);
    if (height > root.layer) {
      // The key goes above the current root: split everything around it and stack the halves
      // under a new root, adding single-child nodes for any layers skipped in between.
      let [left, right] = this.#splitAround(root, key);
      for (let layer = root.layer + 1; layer < height; layer++) {
        if (left) left = new MstNode(layer, null, [left]);
        if (right) right = new MstNode(layer, null, [right]);
      }
      const entries: Entry[] = [];
      if (left) entries.push(left);
      entries.push(new Leaf(key, value));
      if (right) entries.push(right);
      return new Mst(this.store, new MstNode(height, null, entries));
    }
    return new Mst(this.store, this.#add(root, key, value, height));
  }

  #add(node: MstNode, key: string, value: Cid, height: number): MstNode {
    const entries = this.entriesOf(node);
    const index = findGtOrEqualLeafIndex(entries, key);
    const found = entries[index];
    if (found instanceof Leaf && found.key === key) {
      throw new MstError('RecordExists', `there is already a record at ${key}`);
    }
    const prev = entries[index - 1];
    if (height === node.layer) {
      if (prev instanceof MstNode) {
        const [left, right] = this.#splitAround(prev, key);
        const replacement: Entry[] = [];
        if (left) replacement.push(left);
        replacement.push(new Leaf(key, value));
        if (right) replacement.push(right);
        return new MstNode(node.layer, null, [...entries.slice(0, index - 1), ...replacement, ...entries.slice(index)]);
      }
      return new MstNode(node.layer, null, [...entries.slice(0, index), new Leaf(key, value), ...entries.slice(index)]);
    }
    if (prev instanceof MstNode) {
      const updated = this.#add(prev, key, value, height);
      return new MstNode(node.layer, null, [...entries.slice(0, index - 1), updated, ...entries.slice(index)]);
    }
    const child = this.#add(new MstNode(node.layer - 1, null, []), key, value, height);
    return new MstNode(node.layer, null, [...entries.slice(0, index), child, ...entries.slice(index)]);
  }

  // Splits a subtree into the parts below and above `key` (which is not in it).
  #splitAround(node: MstNode, key: string): [MstNode | null, MstNode | null] {
    const entries = this.entriesOf(node);
    const index = findGtOrEqualLeafIndex(entries, key);
    const left = entries.slice(0, index);
    const right = entries.slice(index);
    const last = left[left.length - 1];
    if (last instanceof MstNode) {
      left.pop();
      const [l, r] = this.#splitAround(last, key);
      if (l) left.push(l);
      if (r) right.unshift(r);
    }
    return [
      left.length > 0 ? new MstNode(node.layer, null, left) : null,
      right.length > 0 ? new MstNode(node.layer, null, right) : null,
    ];
  }

  update(key: string, value: Cid): Mst {
    assertValidMstKey(key);
    return new Mst(this.store, this.#update(this.root, key, value));
  }

  #update(node: MstNode, key: string, value: Cid): MstNode {
    const entries = this.entriesOf(node);
    const index = findGtOrEqualLeafIndex(entries, key);
    const found = entries[index];
    if (found instanceof Leaf && found.key === key) {
      if (cidEquals(found.value, value)) return node;
      return new MstNode(node.layer, null, [
        ...entries.slice(0, index),
        new Leaf(key, value),
        ...entries.slice(index + 1),
      ]);
    }
    const prev = entries[index - 1];
    if (prev instanceof MstNode) {
      const updated = this.#update(prev, key, value);
      if (updated === prev) return node;
      return new MstNode(node.layer, null, [...entries.slice(0, index - 1), updated, ...entries.slice(index)]);
    }
    throw new MstError('RecordNotFound', `there is no record at ${key}`);
  }

  delete(key: string): Mst {
    let root = this.#delete(this.root, key);
    // A root holding nothing but one subtree is not canonical: the subtree is the root.
    for (;;) {
      const entries = this.entriesOf(root);
      if (entries.length === 1 && entries[0] instanceof MstNode) root = entries[0];
      else break;
    }
    if (this.entriesOf(root).length === 0 && root.layer !== 0) root = new MstNode(0, null, []);
    return new Mst(this.store, root);
  }

  #delete(node: MstNode, key: string): MstNode {
    const entries = this.entriesOf(node);
    const index = findGtOrEqualLeafIndex(entries, key);
    const found = entries[index];
    if (found instanceof Leaf && found.key === key) {
      const prev = entries[index - 1];
      const next = entries[index + 1];
      if (prev instanceof MstNode && next instanceof MstNode) {
        const merged = this.#appendMerge(prev, next);
        return new MstNode(node.layer, null, [...entries.slice(0, index - 1), merged, ...entries.slice(index + 2)]);
      }
      return new MstNode(node.layer, null, [...entries.slice(0, index), ...entries.slice(index + 1)]);
    }
    const prev = entries[index - 1];
    if (prev instanceof MstNode) {
      const updated = this.#delete(prev, key);
      if (this.entriesOf(updated).length === 0) {
        return new MstNode(node.layer, null, [...entries.slice(0, index - 1), ...entries.slice(index)]);
      }
      return new MstNode(node.layer, null, [...entries.slice(0, index - 1), updated, ...entries.slice(index)]);
    }
    throw new MstError('RecordNotFound', `there is no record at ${key}`);
  }

  // Joins two sibling subtrees whose separating key was deleted.
  #appendMerge(left: MstNode, right: MstNode): MstNode {
    const a = this.entriesOf(left);
    const b = this.entriesOf(right);
    const lastA = a[a.length - 1];
    const firstB = b[0];
    if (lastA instanceof MstNode && firstB instanceof MstNode) {
      return new MstNode(left.layer, null, [...a.slice(0, -1), this.#appendMerge(lastA, firstB), ...b.slice(1)]);
    }
    return new MstNode(left.layer, null, [...a, ...b]);
  }

  // ---------------------------------------------------------------------------------------------
  // Hashing

  /**
   * Computes the CID of every node created since the tree was loaded and returns the root CID
   * and those nodes' blocks (each encoded once). Finalizing twice returns no blocks the second time.
   */
  finalize(): { root: Cid; blocks: BlockMap } {
    const blocks = new BlockMap();
    const root = this.#finalize(this.root, blocks);
    return { root, blocks };
  }

  /** Root CID (finalizing new nodes as needed; their blocks are discarded). */
  rootCid(): Cid {
    return this.finalize().root;
  }

  #finalize(node: MstNode, blocks: BlockMap): Cid {
    if (node.cid !== null) return node.cid;
    const entries = node.entries as Entry[];
    for (const entry of entries) if (entry instanceof MstNode && entry.cid === null) this.#finalize(entry, blocks);
    const bytes = entries.length === 0 ? EMPTY_NODE_BYTES : encodeNode(contentFromEntries(entries));
    const cid = cidForCbor(bytes);
    node.cid = cid;
    blocks.set(cid, bytes);
    return cid;
  }
}
