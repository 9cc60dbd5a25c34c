/**
 * Opening account stores and keeping the recently used ones open. Each account's store is one
 * SQLite file under `<directory>/<shard>/<did>/`; an open store is an `ActorHandle`: the
 * connection, its block store (with its block cache) and its prepared statements, made once per
 * open database. At most `maxOpen` stay open; the least recently used idle one is closed first.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseCid } from '@portage/atproto/cid';
import type { Statement } from 'better-sqlite3';
import { SqliteBlockStore } from './block-store.ts';
import { openActorDb, type SqliteDb } from './db.ts';
import { repoNotFound } from './errors.ts';
import type { RepoRoot } from './types.ts';

export type Stmt = Statement<unknown[], unknown>;

/** The statements every commit or read uses, prepared when the store opens. */
export interface Statements {
  getRoot: Stmt;
  putRoot: Stmt;
  getRecordCid: Stmt;
  getRecordWithBlock: Stmt;
  upsertRecord: Stmt;
  deleteRecord: Stmt;
  recordCidInUse: Stmt;
  getBlob: Stmt;
  insertBlob: Stmt;
  makeBlobPermanent: Stmt;
  deleteBlob: Stmt;
  linkBlob: Stmt;
  blobsOfRecord: Stmt;
  unlinkRecordBlobs: Stmt;
  blobInUse: Stmt;
}

/** The block of the record row in scope (NULL when missing), as a column of a record query. */
export const RECORD_BLOCK = '(SELECT content FROM repo_block WHERE repo_block.cid = cid_bytes(record.cid))';

const withCidBytes = new WeakSet<SqliteDb>();

/**
 * The record table names blocks by CID text, the block table by CID bytes: `cid_bytes(text)`
 * lets one statement read a record row and its block (one read transaction instead of two).
 * Defined once per connection (a fresh handle over the same connection reuses it).
 */
function defineCidBytes(db: SqliteDb): void {
  if (withCidBytes.has(db)) return;
  db.function('cid_bytes', { deterministic: true }, (text) => parseCid(text as string).bytes);
  withCidBytes.add(db);
}

/** One open account database with its block store and prepared statements. */
export class ActorHandle {
  readonly did: string;
  readonly db: SqliteDb;
  readonly blocks: SqliteBlockStore;
  readonly sql: Statements;
  private readonly cachedStatements = new Map<string, Stmt>();

  constructor(did: string, db: SqliteDb, cacheBytes: number | undefined) {
    this.did = did;
    this.db = db;
    defineCidBytes(db);
    this.blocks = new SqliteBlockStore(db, cacheBytes);
    this.sql = {
      getRoot: db.prepare('SELECT cid, rev FROM repo_root WHERE did = ?'),
      putRoot: db.prepare(
        `INSERT INTO repo_root (did, cid, rev, indexed_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (did) DO UPDATE SET cid = excluded.cid, rev = excluded.rev, indexed_at = excluded.indexed_at`,
      ),
      getRecordCid: db.prepare('SELECT cid FROM record WHERE uri = ?'),
      getRecordWithBlock: db
        .prepare(`SELECT cid, ${RECORD_BLOCK} AS content, takedown_ref FROM record WHERE uri = ?`)
        .raw(),
      upsertRecord: db.prepare(
        `INSERT INTO record (uri, cid, collection, rkey, repo_rev, indexed_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (uri) DO UPDATE SET cid = excluded.cid, repo_rev = excluded.repo_rev, indexed_at = excluded.indexed_at`,
      ),
      deleteRecord: db.prepare('DELETE FROM record WHERE uri = ?'),
      recordCidInUse: db.prepare('SELECT 1 AS x FROM record WHERE cid = ? LIMIT 1'),
      getBlob: db.prepare('SELECT cid, mime_type, size, temp_key, takedown_ref FROM blob WHERE cid = ?'),
      insertBlob: db.prepare(
        'INSERT OR IGNORE INTO blob (cid, mime_type, size, temp_key, created_at) VALUES (?, ?, ?, ?, ?)',
      ),
      makeBlobPermanent: db.prepare('UPDATE blob SET temp_key = NULL WHERE cid = ?'),
      deleteBlob: db.prepare('DELETE FROM blob WHERE cid = ?'),
      linkBlob: db.prepare('INSERT OR IGNORE INTO record_blob (blob_cid, record_uri) VALUES (?, ?)'),
      blobsOfRecord: db.prepare('SELECT blob_cid FROM record_blob WHERE record_uri = ?'),
      unlinkRecordBlobs: db.prepare('DELETE FROM record_blob WHERE record_uri = ?'),
      blobInUse: db.prepare('SELECT 1 AS x FROM record_blob WHERE blob_cid = ? LIMIT 1'),
    };
  }

  /** A prepared statement for `sql`, prepared once per open database. */
  stmt(sql: string): Stmt {
    let statement = this.cachedStatements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.cachedStatements.set(sql, statement);
    }
    return statement;
  }

  root(): RepoRoot | undefined {
    const row = this.sql.getRoot.get(this.did) as { cid: string; rev: string } | undefined;
    return row ? { cid: parseCid(row.cid), rev: row.rev } : undefined;
  }
}

export interface OpenStoresOptions {
  /** Root directory of the per-account stores. */
  directory: string;
  /** Block cache budget per open account, in bytes. */
  blockCacheBytes?: number;
  /** How many account databases stay open at once (default 200). */
  maxOpen?: number;
  /** A store that must not be closed now (a writer holds or waits for its lock). */
  busy: (did: string) => boolean;
  /** Called for each store as it opens (the root index catches up with it). */
  onOpen: (handle: ActorHandle) => void;
}

export class OpenStores {
  readonly directory: string;
  private readonly options: OpenStoresOptions;
  private readonly open = new Map<string, ActorHandle>();

  constructor(options: OpenStoresOptions) {
    this.options = options;
    this.directory = options.directory;
  }

  /** Directory of one account: sharded by a hash of the DID so no directory grows huge. */
  accountDirectory(did: string): string {
    const shard = createHash('sha256').update(did).digest('hex').slice(0, 2);
    return join(this.directory, shard, did.replace(/[^a-zA-Z0-9._-]/g, '_'));
  }

  dbPath(did: string): string {
    return join(this.accountDirectory(did), 'store.sqlite');
  }

  keyPath(did: string): string {
    return join(this.accountDirectory(did), 'signing-key.json');
  }

  /** True when the account has a store (open, or on disk). */
  has(did: string): boolean {
    return this.open.has(did) || existsSync(this.dbPath(did));
  }

  /** The account's store, opened (and created) if need be, marked most recently used. */
  handle(did: string): ActorHandle {
    const cached = this.open.get(did);
    if (cached) {
      this.open.delete(did);
      this.open.set(did, cached);
      return cached;
    }
    const handle = new ActorHandle(did, openActorDb(this.dbPath(did)), this.options.blockCacheBytes);
    this.open.set(did, handle);
    this.options.onOpen(handle);
    this.evictIdle();
    return handle;
  }

  /** The store of an existing account, or RepoNotFound (never creates one). */
  existing(did: string): ActorHandle {
    if (!this.has(did)) throw repoNotFound(did);
    return this.handle(did);
  }

  /** The open handle of `did`, if any (not marked as used). */
  peek(did: string): ActorHandle | undefined {
    return this.open.get(did);
  }

  /**
   * Replaces `handle` with a fresh one over the same connection (an empty block cache), if it is
   * still the account's open handle.
   */
  refresh(handle: ActorHandle): void {
    if (this.open.get(handle.did) === handle) {
      this.open.set(handle.did, new ActorHandle(handle.did, handle.db, this.options.blockCacheBytes));
    }
  }

  /** Closes the account's store if it is open. */
  closeOne(did: string): void {
    const handle = this.open.get(did);
    if (handle) {
      handle.db.close();
      this.open.delete(did);
    }
  }

  /** The open stores, as a snapshot (callers may await between them). */
  snapshot(): [string, ActorHandle][] {
    return [...this.open];
  }

  private evictIdle(): void {
    const max = this.options.maxOpen ?? 200;
    if (this.open.size <= max) return;
    for (const [did, handle] of this.open) {
      if (this.open.size <= max) break;
      if (this.options.busy(did)) continue;
      handle.db.close();
      this.open.delete(did);
    }
  }

  close(): void {
    for (const handle of this.open.values()) handle.db.close();
    this.open.clear();
  }
}
