/**
 * The repository engine reads blocks synchronously through a block-store interface; this one
 * reads them from the account's SQLite file. better-sqlite3 is synchronous, so a lookup is a
 * plain function call; a small byte-bounded LRU keeps the hot upper MST nodes out of SQLite on
 * every write, without letting a large repository grow the process.
 */
import { type Cid, cidFromBytes } from '@portage/atproto/cid';
import type { BlockStore, RevisionedBlockSource } from '@portage/atproto/repo/block-store';
import type { SqliteDb } from './db.ts';

/** Default cache budget per open account store. */
export const DEFAULT_BLOCK_CACHE_BYTES = 4 * 1024 * 1024;

function cacheKey(cid: Cid): string {
  // The binary CID as a latin1 string: built natively, exact, and a good Map key.
  const b = cid.bytes;
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/** A least-recently-used map of block bytes, bounded by total size. */
export class BlockCache {
  private readonly entries = new Map<string, Uint8Array>();
  private bytes = 0;
  readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get(cid: Cid): Uint8Array | undefined {
    const key = cacheKey(cid);
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  set(cid: Cid, bytes: Uint8Array): void {
    if (bytes.length > this.maxBytes / 8) return; // big records would flush the useful nodes
    const key = cacheKey(cid);
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= old.length;
      this.entries.delete(key);
    }
    this.entries.set(key, bytes);
    this.bytes += bytes.length;
    while (this.bytes > this.maxBytes) {
      const oldest = this.entries.entries().next().value;
      if (!oldest) break;
      this.entries.delete(oldest[0]);
      this.bytes -= oldest[1].length;
    }
  }

  delete(cid: Cid): void {
    const key = cacheKey(cid);
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= old.length;
      this.entries.delete(key);
    }
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

export class SqliteBlockStore implements BlockStore, RevisionedBlockSource {
  private readonly db: SqliteDb;
  private readonly cache: BlockCache;
  private readonly selectOne;
  private readonly existsOne;
  private readonly insertOne;
  private readonly deleteOne;

  constructor(db: SqliteDb, cacheBytes = DEFAULT_BLOCK_CACHE_BYTES) {
    this.db = db;
    this.cache = new BlockCache(cacheBytes);
    this.selectOne = db.prepare<[Uint8Array], { content: Uint8Array }>('SELECT content FROM repo_block WHERE cid = ?');
    this.existsOne = db.prepare<[Uint8Array], { x: number }>('SELECT 1 AS x FROM repo_block WHERE cid = ?');
    // A block keeps the rev that first wrote it: identical content written again is not new.
    this.insertOne = db.prepare<[Uint8Array, string, number, Uint8Array]>(
      'INSERT OR IGNORE INTO repo_block (cid, repo_rev, size, content) VALUES (?, ?, ?, ?)',
    );
    this.deleteOne = db.prepare<[Uint8Array]>('DELETE FROM repo_block WHERE cid = ?');
  }

  getBlock(cid: Cid): Uint8Array | undefined {
    const cached = this.cache.get(cid);
    if (cached) return cached;
    const row = this.selectOne.get(cid.bytes);
    if (!row) return undefined;
    const bytes = new Uint8Array(row.content.buffer, row.content.byteOffset, row.content.byteLength);
    this.cache.set(cid, bytes);
    return bytes;
  }

  hasBlock(cid: Cid): boolean {
    return this.cache.get(cid) !== undefined || this.existsOne.get(cid.bytes) !== undefined;
  }

  /** Writes go straight to SQLite; callers wrap a commit's blocks in one transaction. */
  putBlock(cid: Cid, bytes: Uint8Array, rev = ''): void {
    this.insertOne.run(cid.bytes, rev, bytes.length, bytes);
  }

  deleteBlock(cid: Cid): void {
    this.deleteOne.run(cid.bytes);
    this.cache.delete(cid);
  }

  *blocksSince(since: string): Iterable<{ cid: Cid; bytes: Uint8Array }> {
    for (const [cid, bytes] of this.iterateSince(since)) yield { cid, bytes };
  }

  /** Remembers blocks just committed (they are the likeliest to be read by the next write). */
  cacheCommitted(blocks: Iterable<[Cid, Uint8Array]>): void {
    for (const [cid, bytes] of blocks) this.cache.set(cid, bytes);
  }

  forget(cids: Iterable<Cid>): void {
    for (const cid of cids) this.cache.delete(cid);
  }

  /** Blocks by CID for sync.getBlocks: found ones in request order, plus the CIDs not stored. */
  getMany(cids: Cid[]): { found: [Cid, Uint8Array][]; missing: Cid[] } {
    const found: [Cid, Uint8Array][] = [];
    const missing: Cid[] = [];
    for (const cid of cids) {
      const bytes = this.getBlock(cid);
      if (bytes) found.push([cid, bytes]);
      else missing.push(cid);
    }
    return { found, missing };
  }

  /** Blocks written by commits after `sinceRev` (getRepo?since=), oldest commit first, paged. */
  *iterateSince(sinceRev: string, pageSize = 500): Generator<[Cid, Uint8Array]> {
    type Row = { cid: Uint8Array; repo_rev: string; content: Uint8Array };
    const page = this.db.prepare<{ since: string; rev: string; cid: Uint8Array; limit: number }, Row>(
      `SELECT cid, repo_rev, content FROM repo_block
       WHERE repo_rev > @since AND (repo_rev > @rev OR (repo_rev = @rev AND cid > @cid))
       ORDER BY repo_rev, cid LIMIT @limit`,
    );
    let rev = '';
    let cid: Uint8Array = new Uint8Array(0);
    for (;;) {
      const rows = page.all({ since: sinceRev, rev, cid, limit: pageSize });
      for (const row of rows) yield [cidFromBytes(row.cid), row.content];
      if (rows.length < pageSize) return;
      rev = rows[rows.length - 1].repo_rev;
      cid = rows[rows.length - 1].cid;
    }
  }
}
