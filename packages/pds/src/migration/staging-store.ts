/**
 * Where an incoming repository CAR waits while it is verified: a scratch SQLite file, so a
 * repository of any size is staged on disk instead of in memory (the reference reads the
 * whole CAR into memory). Nothing here is durable: the file is written without a journal or
 * fsync and deleted when the import ends, whether it succeeded or not.
 *
 * The CAR reader hands over blocks one at a time; inserting each in its own transaction
 * would cost a commit per block, so writes are buffered and flushed in batches (bounded by
 * count and bytes, so memory stays small). Any read flushes first.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Cid } from '@portage/atproto/cid';
import type { BlockStore } from '@portage/atproto/repo/block-store';

const FLUSH_BLOCKS = 2000;
const FLUSH_BYTES = 8 * 1024 * 1024;

export class StagingBlockStore implements BlockStore {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #insert: Database.Statement<[Uint8Array, Uint8Array]>;
  readonly #select: Database.Statement<[Uint8Array], Uint8Array>;
  readonly #delete: Database.Statement<[Uint8Array]>;
  #pending: [Uint8Array, Uint8Array][] = [];
  #pendingBytes = 0;
  /** Blocks staged so far (duplicates in the CAR counted once they are flushed). */
  #bytes = 0;

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

  /** Total bytes of block data received. */
  get bytesStaged(): number {
    return this.#bytes + this.#pendingBytes;
  }

  putBlock(cid: Cid, bytes: Uint8Array): void {
    this.#pending.push([cid.bytes, bytes]);
    this.#pendingBytes += bytes.length;
    if (this.#pending.length >= FLUSH_BLOCKS || this.#pendingBytes >= FLUSH_BYTES) this.#flush();
  }

  getBlock(cid: Cid): Uint8Array | undefined {
    this.#flush();
    const content = this.#select.get(cid.bytes);
    return content ? new Uint8Array(content.buffer, content.byteOffset, content.byteLength) : undefined;
  }

  hasBlock(cid: Cid): boolean {
    return this.getBlock(cid) !== undefined;
  }

  deleteBlock(cid: Cid): void {
    this.#flush();
    this.#delete.run(cid.bytes);
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#bytes += this.#pendingBytes;
    this.#pendingBytes = 0;
    this.#db.transaction(() => {
      for (const [cid, bytes] of batch) this.#insert.run(cid, bytes);
    })();
  }

  /** Closes and deletes the staging file. */
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
