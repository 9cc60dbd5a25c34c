/**
 * Where repository blocks live. The read path is synchronous on purpose: the PDS backs it with
 * better-sqlite3 (synchronous), and an await per block would dominate the cost of walking a tree
 * of hundreds of thousands of nodes. Writes never go through here block by block: the repo
 * writer hands back a batch (new blocks + removed CIDs) that the caller persists in one
 * transaction, tagged with the commit's rev so `since` exports can select by rev.
 */
import { type Cid, formatCid } from '../cid.ts';

/** Read access to blocks by CID. `undefined` means "not here" (callers turn it into a typed error). */
export interface BlockReader {
  getBlock(cid: Cid): Uint8Array | undefined;
}

/** A block store the importer can stage into and the writer's results can be applied to. */
export interface BlockStore extends BlockReader {
  hasBlock(cid: Cid): boolean;
  /** `rev` is the repo revision that first wrote the block (used by `since` exports). */
  putBlock(cid: Cid, bytes: Uint8Array, rev?: string): void;
  deleteBlock(cid: Cid): void;
}

/** A store that can list the blocks written after a revision (for `getRepo?since=`). */
export interface RevisionedBlockSource extends BlockReader {
  /** Blocks whose rev is strictly greater than `since`, in any order. */
  blocksSince(since: string): Iterable<{ cid: Cid; bytes: Uint8Array }>;
}

/**
 * Identity key for a CID in maps and sets: its binary form as a one-char-per-byte string. This is
 * an in-memory key only (not printable); it costs a third of base32-encoding the CID, and every
 * block of an import or export goes through it.
 */
export function cidKey(cid: Cid): string {
  return String.fromCharCode.apply(null, cid.bytes as unknown as number[]);
}

/** A set of blocks keyed by CID; the unit in which commits hand over their new blocks. */
export class BlockMap {
  readonly #map = new Map<string, { cid: Cid; bytes: Uint8Array }>();

  set(cid: Cid, bytes: Uint8Array): void {
    this.#map.set(cidKey(cid), { cid, bytes });
  }
  get(cid: Cid): Uint8Array | undefined {
    return this.#map.get(cidKey(cid))?.bytes;
  }
  has(cid: Cid): boolean {
    return this.#map.has(cidKey(cid));
  }
  delete(cid: Cid): boolean {
    return this.#map.delete(cidKey(cid));
  }
  addAll(other: BlockMap): void {
    for (const entry of other.entries()) this.#map.set(cidKey(entry.cid), entry);
  }
  entries(): IterableIterator<{ cid: Cid; bytes: Uint8Array }> {
    return this.#map.values();
  }
  /** The blocks themselves, so a BlockMap is what a CAR writer or a firehose event takes as is. */
  [Symbol.iterator](): IterableIterator<{ cid: Cid; bytes: Uint8Array }> {
    return this.#map.values();
  }
  cids(): Cid[] {
    return Array.from(this.#map.values(), (e) => e.cid);
  }
  /** CID strings, sorted: handy for comparing sets in tests and logs. */
  cidStrings(): string[] {
    return Array.from(this.#map.values(), (e) => formatCid(e.cid)).sort();
  }
  get size(): number {
    return this.#map.size;
  }
  /** Total bytes of block data (what a firehose frame limit is measured against). */
  get byteLength(): number {
    let n = 0;
    for (const { bytes } of this.#map.values()) n += bytes.length;
    return n;
  }
}

/** In-memory block store with a rev per block; the default staging store and the test store. */
export class MemoryBlockStore implements BlockStore, RevisionedBlockSource {
  readonly #blocks = new Map<string, { cid: Cid; bytes: Uint8Array; rev: string | undefined }>();

  getBlock(cid: Cid): Uint8Array | undefined {
    return this.#blocks.get(cidKey(cid))?.bytes;
  }
  hasBlock(cid: Cid): boolean {
    return this.#blocks.has(cidKey(cid));
  }
  putBlock(cid: Cid, bytes: Uint8Array, rev?: string): void {
    const key = cidKey(cid);
    // A block keeps the rev that first wrote it: re-writing identical content is not "new".
    if (!this.#blocks.has(key)) this.#blocks.set(key, { cid, bytes, rev });
  }
  deleteBlock(cid: Cid): void {
    this.#blocks.delete(cidKey(cid));
  }
  *blocksSince(since: string): Iterable<{ cid: Cid; bytes: Uint8Array }> {
    for (const { cid, bytes, rev } of this.#blocks.values()) {
      if (rev !== undefined && rev > since) yield { cid, bytes };
    }
  }
  /** Persists a commit's blocks and drops the ones it no longer references, like one SQL transaction. */
  applyCommit(commit: { rev: string; newBlocks: BlockMap; removedCids: readonly Cid[] }): void {
    for (const cid of commit.removedCids) this.deleteBlock(cid);
    for (const { cid, bytes } of commit.newBlocks.entries()) this.putBlock(cid, bytes, commit.rev);
  }
  get size(): number {
    return this.#blocks.size;
  }
}
