/**
 * Where an incoming repository CAR waits while it is verified. The import reads every block
 * back by CID, in tree order, so lookups must be cheap: the first blocks (up to a memory
 * budget, 64 MiB by default, which holds a repository of about 200,000 records) are kept in
 * memory, copied into large slabs; whatever comes after spills to a scratch SQLite file, so a
 * repository of any size is staged without memory growing past the budget (the reference reads
 * the whole CAR into memory). Nothing here is durable: the file is written without a journal or
 * fsync and deleted when the import ends, whether it succeeded or not.
 *
 * Blocks bound for the file are buffered and flushed in batches (bounded by count and bytes),
 * because a transaction per block would cost a commit each. Any read from the file flushes first.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Cid, cidBytesEqual } from '@portage/atproto/cid';
import type { BlockStore } from '@portage/atproto/repo/block-store';

/** Default memory budget of one staging store. */
export const DEFAULT_STAGING_MEMORY_BYTES = 64 * 1024 * 1024;
/** Blocks are copied into slabs of this size (a larger block gets its own copy). */
const SLAB_BYTES = 1024 * 1024;
const FLUSH_BLOCKS = 2000;
const FLUSH_BYTES = 8 * 1024 * 1024;

export interface StagingOptions {
  /** Bytes of block data kept in memory before blocks go to the scratch file. */
  memoryBytes?: number;
}

/** A block held in memory, chained to the others whose CIDs share its lookup key. */
interface MemoryBlock {
  cid: Uint8Array;
  bytes: Uint8Array;
  next: MemoryBlock | undefined;
}

/**
 * The in-memory lookup key of a CID: 30 bits of its SHA-256 digest, a small integer. Every block
 * of an import is put and read back by CID; a string key made from the CID's bytes would cost an
 * allocation and a string hash per lookup, where this costs four byte reads (the digest is
 * uniformly random, so keys rarely collide, and blocks that share one are told apart by their
 * whole CID).
 */
function lookupKey(cid: Uint8Array): number {
  return (cid[4]! << 22) | (cid[5]! << 14) | (cid[6]! << 6) | (cid[7]! >> 2);
}

export class StagingBlockStore implements BlockStore {
  readonly #directory: string;
  readonly #memoryBudget: number;
  /** Blocks held in memory, by lookupKey of their CID. */
  readonly #memory = new Map<number, MemoryBlock>();
  #memoryBytes = 0;
  #slab = new Uint8Array(0);
  #slabUsed = 0;
  #file: SpillFile | undefined;

  constructor(directory: string, options: StagingOptions = {}) {
    this.#directory = directory;
    this.#memoryBudget = options.memoryBytes ?? DEFAULT_STAGING_MEMORY_BYTES;
  }

  /** True once blocks have gone to the scratch file (the memory budget was reached). */
  get spilled(): boolean {
    return this.#file !== undefined;
  }

  putBlock(cid: Cid, bytes: Uint8Array): void {
    const key = lookupKey(cid.bytes);
    const first = this.#memory.get(key);
    if (this.#inMemory(first, cid.bytes) !== undefined) return;
    if (this.#file === undefined && this.#memoryBytes + bytes.length <= this.#memoryBudget) {
      // A copy: the reader's blocks are views into network chunks, which must not be pinned.
      // (Its CIDs are 36-byte arrays of their own, kept as they are.)
      this.#memory.set(key, { cid: cid.bytes, bytes: this.#copy(bytes), next: first });
      this.#memoryBytes += bytes.length;
      return;
    }
    this.#file ??= new SpillFile(this.#directory);
    this.#file.put(cid, bytes);
  }

  getBlock(cid: Cid): Uint8Array | undefined {
    return this.#inMemory(this.#memory.get(lookupKey(cid.bytes)), cid.bytes)?.bytes ?? this.#file?.get(cid);
  }

  hasBlock(cid: Cid): boolean {
    return this.getBlock(cid) !== undefined;
  }

  deleteBlock(cid: Cid): void {
    // Memory is not given back (slabs are shared); the budget only bounds what was staged.
    const key = lookupKey(cid.bytes);
    let previous: MemoryBlock | undefined;
    for (let block = this.#memory.get(key); block !== undefined; previous = block, block = block.next) {
      if (!cidBytesEqual(block.cid, cid.bytes)) continue;
      if (previous) previous.next = block.next;
      else if (block.next) this.#memory.set(key, block.next);
      else this.#memory.delete(key);
      return;
    }
    this.#file?.delete(cid);
  }

  /** The block with this CID in the chain starting at `block`. */
  #inMemory(block: MemoryBlock | undefined, cid: Uint8Array): MemoryBlock | undefined {
    while (block !== undefined && !cidBytesEqual(block.cid, cid)) block = block.next;
    return block;
  }

  #copy(bytes: Uint8Array): Uint8Array {
    if (bytes.length > SLAB_BYTES / 4) return bytes.slice();
    if (this.#slabUsed + bytes.length > this.#slab.length) {
      this.#slab = new Uint8Array(Math.min(SLAB_BYTES, this.#memoryBudget));
      this.#slabUsed = 0;
    }
    const copy = this.#slab.subarray(this.#slabUsed, this.#slabUsed + bytes.length);
    copy.set(bytes);
    this.#slabUsed += bytes.length;
    return copy;
  }

  /** Drops the blocks and deletes the scratch file. */
  dispose(): void {
    this.#memory.clear();
    this.#slab = new Uint8Array(0);
    this.#file?.dispose();
    this.#file = undefined;
  }
}

/** The scratch SQLite file for blocks past the memory budget. */
class SpillFile {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #insert: Database.Statement<[Uint8Array, Uint8Array]>;
  readonly #select: Database.Statement<[Uint8Array], Uint8Array>;
  readonly #delete: Database.Statement<[Uint8Array]>;
  #pending: [Uint8Array, Uint8Array][] = [];
  #pendingBytes = 0;

  constructor(directory: string) {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    this.path = join(directory, `import-${randomUUID()}.sqlite`);
    this.#db = new Database(this.path);
    // Scratch data: a crash simply loses the staging file, which the next start removes.
    this.#db.pragma('journal_mode = OFF');
    this.#db.pragma('synchronous = OFF');
    // A page cache large enough that the verification walk rarely goes back to the file.
    this.#db.pragma('cache_size = -65536');
    this.#db.exec('CREATE TABLE block (cid BLOB PRIMARY KEY, content BLOB NOT NULL) WITHOUT ROWID');
    this.#insert = this.#db.prepare('INSERT OR IGNORE INTO block (cid, content) VALUES (?, ?)');
    // pluck: the content column itself, without building a row object per block.
    this.#select = this.#db.prepare<[Uint8Array], Uint8Array>('SELECT content FROM block WHERE cid = ?').pluck();
    this.#delete = this.#db.prepare('DELETE FROM block WHERE cid = ?');
  }

  put(cid: Cid, bytes: Uint8Array): void {
    this.#pending.push([cid.bytes, bytes]);
    this.#pendingBytes += bytes.length;
    if (this.#pending.length >= FLUSH_BLOCKS || this.#pendingBytes >= FLUSH_BYTES) this.#flush();
  }

  get(cid: Cid): Uint8Array | undefined {
    this.#flush();
    const content = this.#select.get(cid.bytes);
    return content ? new Uint8Array(content.buffer, content.byteOffset, content.byteLength) : undefined;
  }

  delete(cid: Cid): void {
    this.#flush();
    this.#delete.run(cid.bytes);
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#db.transaction(() => {
      for (const [cid, bytes] of batch) this.#insert.run(cid, bytes);
    })();
  }

  dispose(): void {
    this.#pending = [];
    if (this.#db.open) this.#db.close();
    rmSync(this.path, { force: true });
  }
}

/** Removes staging files a crash left behind (call at start-up). */
export function clearStagingDirectory(directory: string): void {
  rmSync(directory, { recursive: true, force: true });
}
