/**
 * The actor store: every account's repository, records index and blob metadata, one SQLite file
 * per account under `<directory>/<shard>/<did>/`. Endpoints talk to this service only; it runs
 * the repository engine over a SQLite block store and persists each commit (blocks, records,
 * root, blob links, blob status) in one transaction, acknowledging a write only after it.
 *
 * Writes to one repository are serialised by a per-DID lock because a commit is computed from
 * the current root and signing is asynchronous. Reads need no lock: SQLite (WAL) gives each
 * statement a consistent snapshot, and the root row changes in the same transaction as the
 * blocks it points to.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { decode } from '@atcute/cbor';
import type { Statement } from 'better-sqlite3';
import { type Cid, cidEquals, formatCid, parseCid } from '@portage/atproto/cid';
import type { ExportableSigningKey } from '@portage/atproto/crypto';
import { AtprotoError } from '@portage/atproto/errors';
import type { BlobStore } from '../blobstore/blobstore.ts';
import { MAX_COMMIT_BLOCKS_BYTES } from '../sequencer/events.ts';
import { SqliteBlockStore } from './block-store.ts';
import { openActorDb, openRootIndex, type SqliteDb, useRollbackJournal } from './db.ts';
import { MAX_WRITES_PER_COMMIT, type PreparedWrite } from './prepare-writes.ts';
import {
  createRepo,
  estimatedEventBytes,
  eventCarBytes,
  recordProof,
  type RepoCommit,
  writeRepo,
} from './repo-engine.ts';
import { readSigningKeyFile, writeSigningKeyFile } from './signing-key-file.ts';
import { openSnapshot, snapshotCar } from './snapshot-car.ts';
import type {
  BlobInfo,
  CommitEvent,
  CommitListener,
  CommitResult,
  RepoRoot,
  StoredRecord,
  WriteResult,
} from './types.ts';

/** Errors the endpoints map to XRPC errors by `code` (RepoNotFound, InvalidSwap, BlobNotFound...). */
export class ActorStoreError extends AtprotoError {}

export interface ActorStoreOptions {
  /** Root directory of the per-account stores (e.g. `<PDS_DATA_DIRECTORY>/actors`). */
  directory: string;
  blobstore: BlobStore;
  /** Block cache budget per open account, in bytes. */
  blockCacheBytes?: number;
  /** How many account databases stay open at once (least recently used are closed). */
  maxOpenStores?: number;
  /** How often unreferenced uploads are swept (default 10 minutes; 0 disables the timer). */
  tempBlobSweepIntervalMs?: number;
  /** How old an unreferenced upload must be to be swept (default 1 hour). */
  tempBlobMaxAgeMs?: number;
}

type Stmt = Statement<unknown[], unknown>;

interface Statements {
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
const RECORD_BLOCK = '(SELECT content FROM repo_block WHERE repo_block.cid = cid_bytes(record.cid))';

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
class ActorHandle {
  readonly did: string;
  readonly db: SqliteDb;
  readonly blocks: SqliteBlockStore;
  readonly sql: Statements;

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
      getRecordWithBlock: db.prepare(`SELECT cid, ${RECORD_BLOCK} AS content FROM record WHERE uri = ?`).raw(),
      upsertRecord: db.prepare(
        `INSERT INTO record (uri, cid, collection, rkey, repo_rev, indexed_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (uri) DO UPDATE SET cid = excluded.cid, repo_rev = excluded.repo_rev, indexed_at = excluded.indexed_at`,
      ),
      deleteRecord: db.prepare('DELETE FROM record WHERE uri = ?'),
      recordCidInUse: db.prepare('SELECT 1 AS x FROM record WHERE cid = ? LIMIT 1'),
      getBlob: db.prepare('SELECT cid, mime_type, size, temp_key FROM blob WHERE cid = ?'),
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

  private readonly cachedStatements = new Map<string, Stmt>();

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

/** A write request waiting for its account's next commit. */
interface QueuedWrite {
  writes: PreparedWrite[];
  swapCommit: Cid | undefined;
  resolve: (result: CommitResult) => void;
  reject: (err: unknown) => void;
}

/**
 * The requests at the head of the queue that can share one commit: in arrival order, no
 * swapCommit (it names the commit it expects to follow), no record touched twice, and within
 * the firehose's limits for one #commit: at most 200 ops and (estimated) 2,000,000 bytes of
 * blocks. The first request is always taken: on its own it is as large as the client made it.
 */
function takeBatch(queue: readonly QueuedWrite[]): QueuedWrite[] {
  const first = queue[0] as QueuedWrite;
  if (first.swapCommit) return [first];
  const batch = [first];
  const paths = new Set(first.writes.map((w) => w.path));
  let count = first.writes.length;
  let bytes = estimatedEventBytes(first.writes);
  for (let i = 1; i < queue.length; i++) {
    const item = queue[i] as QueuedWrite;
    if (item.swapCommit || count + item.writes.length > MAX_WRITES_PER_COMMIT) break;
    const itemBytes = estimatedEventBytes(item.writes);
    if (bytes + itemBytes > MAX_COMMIT_BLOCKS_BYTES) break;
    if (item.writes.some((w) => paths.has(w.path))) break;
    for (const w of item.writes) paths.add(w.path);
    count += item.writes.length;
    bytes += itemBytes;
    batch.push(item);
  }
  return batch;
}

function atUri(did: string, collection: string, rkey: string): string {
  return `at://${did}/${collection}/${rkey}`;
}

function notFound(did: string): ActorStoreError {
  return new ActorStoreError('RepoNotFound', `Could not find repo for DID: ${did}`);
}

export class ActorStore {
  readonly directory: string;
  readonly blobstore: BlobStore;
  private readonly options: ActorStoreOptions;
  private readonly open = new Map<string, ActorHandle>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly listeners: CommitListener[] = [];
  private readonly signingKeys = new Map<string, ExportableSigningKey>();
  private readonly queues = new Map<string, QueuedWrite[]>();
  /**
   * Every repository's current root in one small database, so listRepos pages through all
   * accounts without opening each account's store. Written right after each commit; a crash
   * in between leaves it one commit behind until the account's store is next opened.
   */
  private readonly rootIndex: SqliteDb;
  private readonly indexRoot: Stmt;
  private readonly readIndexedRoot: Stmt;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: ActorStoreOptions) {
    this.options = options;
    this.directory = options.directory;
    this.blobstore = options.blobstore;
    this.rootIndex = openRootIndex(join(options.directory, 'repo-roots.sqlite'));
    this.indexRoot = this.rootIndex.prepare(
      `INSERT INTO repo_root (did, cid, rev) VALUES (?, ?, ?)
       ON CONFLICT (did) DO UPDATE SET cid = excluded.cid, rev = excluded.rev`,
    );
    this.readIndexedRoot = this.rootIndex.prepare('SELECT cid, rev FROM repo_root WHERE did = ?');
    const sweepEvery = options.tempBlobSweepIntervalMs ?? 10 * 60 * 1000;
    if (sweepEvery > 0) {
      const maxAge = options.tempBlobMaxAgeMs ?? 60 * 60 * 1000;
      this.sweepTimer = setInterval(() => {
        this.sweepTemporaryBlobs(maxAge).catch(() => {});
      }, sweepEvery);
      this.sweepTimer.unref();
    }
  }

  /**
   * The account's open database, or undefined when it has no repository (the sequencer reads
   * its outbox through this at start-up).
   */
  database(did: string): SqliteDb | undefined {
    if (!this.open.has(did) && !existsSync(this.dbPath(did))) return undefined;
    return this.handle(did).db;
  }

  /** The current root from the shared index (no per-account database opened). */
  getRootIndexed(did: string): RepoRoot | undefined {
    const row = this.readIndexedRoot.get(did) as { cid: string; rev: string } | undefined;
    return row ? { cid: parseCid(row.cid), rev: row.rev } : undefined;
  }

  /**
   * Registers a commit listener (the firehose sequencer). It runs synchronously inside the write
   * transaction, after the repository rows are written: if it throws, the write rolls back.
   */
  onCommit(listener: CommitListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Directory of one account: sharded by a hash of the DID so no directory grows huge. */
  accountDirectory(did: string): string {
    const shard = createHash('sha256').update(did).digest('hex').slice(0, 2);
    return join(this.directory, shard, did.replace(/[^a-zA-Z0-9._-]/g, '_'));
  }

  private dbPath(did: string): string {
    return join(this.accountDirectory(did), 'store.sqlite');
  }

  private keyPath(did: string): string {
    return join(this.accountDirectory(did), 'signing-key.json');
  }

  /** True when a repository exists for `did`. */
  exists(did: string): boolean {
    if (this.open.has(did)) return this.handle(did).root() !== undefined;
    if (!existsSync(this.dbPath(did))) return false;
    return this.handle(did).root() !== undefined;
  }

  private handle(did: string): ActorHandle {
    const cached = this.open.get(did);
    if (cached) {
      this.open.delete(did);
      this.open.set(did, cached);
      return cached;
    }
    const handle = new ActorHandle(did, openActorDb(this.dbPath(did)), this.options.blockCacheBytes);
    this.open.set(did, handle);
    const root = handle.root();
    if (root) this.indexRoot.run(did, formatCid(root.cid), root.rev);
    this.evictIdle();
    return handle;
  }

  /** A handle for an existing repository, or RepoNotFound. */
  private existing(did: string): ActorHandle {
    if (!this.open.has(did) && !existsSync(this.dbPath(did))) throw notFound(did);
    return this.handle(did);
  }

  private evictIdle(): void {
    const max = this.options.maxOpenStores ?? 200;
    if (this.open.size <= max) return;
    for (const [did, handle] of this.open) {
      if (this.open.size <= max) break;
      if (this.locks.has(did)) continue;
      handle.db.close();
      this.open.delete(did);
    }
  }

  /** Runs `fn` with the account's write lock held (one writer per repository at a time). */
  private async withWriteLock<T>(did: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(did) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const chained = previous.then(() => mine);
    this.locks.set(did, chained);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(did) === chained) this.locks.delete(did);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Repository lifecycle

  /**
   * Creates the repository of a new account: stores its signing key and writes the first signed
   * commit over an empty MST. Called by createAccount.
   */
  async create(did: string, signingKey: ExportableSigningKey): Promise<RepoRoot> {
    return this.withWriteLock(did, async () => {
      const handle = this.handle(did);
      if (handle.root()) throw new ActorStoreError('RepoAlreadyExists', `a repository already exists for ${did}`);
      await writeSigningKeyFile(this.keyPath(did), signingKey);
      this.signingKeys.delete(did);
      const commit = await createRepo(handle.blocks, did, signingKey);
      this.persistCommit(handle, commit, [], () => {});
      return { cid: commit.cid, rev: commit.rev };
    });
  }

  /**
   * Runs `fn` on the account's own database connection with its write lock held, for the
   * whole-repository operations of a migration that do not fit the commit path (importRepo
   * replacing the repository, activation re-signing the head commit). Other requests share the
   * connection, so any transaction `fn` opens must be synchronous. Afterwards the account gets a
   * fresh handle (an empty block cache: no block of a replaced repository is served from memory)
   * and the shared root index follows the new root; queued writes commit after it, on the new root.
   */
  async withRepoDb<T>(did: string, fn: (db: SqliteDb) => T | Promise<T>): Promise<T> {
    return this.withWriteLock(did, async () => {
      const handle = this.existing(did);
      try {
        return await fn(handle.db);
      } finally {
        if (this.open.get(did) === handle) {
          this.open.set(did, new ActorHandle(did, handle.db, this.options.blockCacheBytes));
        }
        const root = handle.root();
        if (root) this.indexRoot.run(did, formatCid(root.cid), root.rev);
      }
    });
  }

  /**
   * Runs `write`, a bulk transaction on the account's own connection (through withRepoDb), with
   * the database in rollback-journal mode for its duration. In WAL mode every page it writes
   * would be written twice: into the WAL by its commit, and into the database file again by a
   * checkpoint (12 MB each way for a 20k-record import, and the checkpoint stalls whichever
   * request's commit sets it off). With a rollback journal the new pages go straight into the
   * database file and the journal keeps only the few existing pages the write changes; the commit
   * syncs both, so the write is durable once it returns. Switching modes needs the connection to
   * be the file's only one: when another is open (a tool reading the file), SQLite refuses at
   * once and the write runs in WAL mode like any other.
   */
  bulkWrite<T>(did: string, write: (db: SqliteDb) => T): Promise<T> {
    return this.withRepoDb(did, (db) => {
      const journaled = useRollbackJournal(db);
      try {
        return write(db);
      } finally {
        if (journaled) db.pragma('journal_mode = WAL');
      }
    });
  }

  /** Deletes an account's repository, records and blobs. */
  async destroy(did: string): Promise<void> {
    await this.withWriteLock(did, async () => {
      const handle = this.open.get(did);
      if (handle) {
        handle.db.close();
        this.open.delete(did);
      }
      this.signingKeys.delete(did);
      this.rootIndex.prepare('DELETE FROM repo_root WHERE did = ?').run(did);
      await rm(this.accountDirectory(did), { recursive: true, force: true });
      await this.blobstore.deleteAll(did);
    });
  }

  /** The account's repository signing key (also what service-auth JWTs are signed with). */
  async getSigningKey(did: string): Promise<ExportableSigningKey> {
    const cached = this.signingKeys.get(did);
    if (cached) return cached;
    if (!existsSync(this.keyPath(did))) throw notFound(did);
    const key = await readSigningKeyFile(this.keyPath(did));
    // Importing a key costs more than signing with it; keep a bounded number in memory.
    if (this.signingKeys.size >= 1000) this.signingKeys.delete(this.signingKeys.keys().next().value as string);
    this.signingKeys.set(did, key);
    return key;
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  getRoot(did: string): RepoRoot | undefined {
    if (!this.open.has(did) && !existsSync(this.dbPath(did))) return undefined;
    return this.handle(did).root();
  }

  /** The current record at collection/rkey, or undefined. With `cid`, only that version. */
  getRecord(did: string, collection: string, rkey: string, cid?: Cid): StoredRecord | undefined {
    const handle = this.existing(did);
    const uri = atUri(did, collection, rkey);
    // Record blocks bypass the block cache: it keeps the tree nodes writes need, and one
    // statement for row and block costs less than a cache lookup after the row's own read.
    const row = handle.sql.getRecordWithBlock.get(uri) as [string, Uint8Array | null] | undefined;
    if (!row || !row[1]) return undefined;
    // Stored CIDs are in canonical text form, so text equality is CID equality.
    if (cid && formatCid(cid) !== row[0]) return undefined;
    return { uri, cid: row[0], value: decode(row[1]) };
  }

  /** The CID of the current record at a path, or undefined (swap checks, putRecord). */
  getRecordCid(did: string, collection: string, rkey: string): Cid | undefined {
    const row = this.existing(did).sql.getRecordCid.get(atUri(did, collection, rkey)) as { cid: string } | undefined;
    return row ? parseCid(row.cid) : undefined;
  }

  /**
   * A page of records of one collection ordered by rkey, newest (highest) first unless
   * `reverse`. `cursor` is the last rkey of the previous page.
   */
  listRecords(
    did: string,
    collection: string,
    opts: { limit: number; cursor?: string; reverse?: boolean },
  ): { records: StoredRecord[]; cursor: string | undefined } {
    const handle = this.existing(did);
    const order = opts.reverse ? 'ASC' : 'DESC';
    const compare = opts.reverse ? '>' : '<';
    // The page's blocks come with its rows, in one statement (not one read per record).
    const rows = handle
      .stmt(
        `SELECT uri, cid, rkey, ${RECORD_BLOCK} AS content FROM record
         WHERE collection = ? ${opts.cursor !== undefined ? `AND rkey ${compare} ?` : ''}
         ORDER BY rkey ${order} LIMIT ?`,
      )
      .all(...(opts.cursor !== undefined ? [collection, opts.cursor, opts.limit] : [collection, opts.limit])) as {
      uri: string;
      cid: string;
      rkey: string;
      content: Uint8Array | null;
    }[];
    const records: StoredRecord[] = [];
    for (const row of rows) {
      if (row.content) records.push({ uri: row.uri, cid: row.cid, value: decode(row.content) });
    }
    const cursor = rows.length === opts.limit ? rows[rows.length - 1].rkey : undefined;
    return { records, cursor };
  }

  /** Collections that hold at least one record (describeRepo). */
  listCollections(did: string): string[] {
    const rows = this.existing(did).stmt('SELECT DISTINCT collection FROM record ORDER BY collection').all() as {
      collection: string;
    }[];
    return rows.map((r) => r.collection);
  }

  /** Number of records in the repository. */
  countRecords(did: string): number {
    const row = this.existing(did).stmt('SELECT count(*) AS n FROM record').get() as { n: number };
    return row.n;
  }

  /**
   * The repository as a CAR stream: the commit first, then every block of the repository (with
   * `since`, only the blocks written by commits after that rev). It reads from its own read-only
   * connection inside one read transaction, so the export is a consistent snapshot however many
   * commits land while it streams, and it scans the blocks table in storage order (about 2 us a
   * block) instead of looking each block up while walking the tree: CAR readers accept any
   * order, and this is also the order the reference PDS serves.
   */
  exportCar(did: string, since?: string): AsyncIterable<Uint8Array> {
    if (!this.open.has(did) && !existsSync(this.dbPath(did))) throw notFound(did);
    const snapshot = openSnapshot(this.dbPath(did));
    try {
      const row = snapshot.prepare('SELECT cid FROM repo_root WHERE did = ?').get(did) as { cid: string } | undefined;
      if (!row) throw notFound(did);
      return snapshotCar(snapshot, parseCid(row.cid), since);
    } catch (err) {
      snapshot.close();
      throw err;
    }
  }

  /** The blocks proving the presence (or absence) of a record in the current commit. */
  getRecordProof(
    did: string,
    collection: string,
    rkey: string,
  ): { root: Cid; blocks: { cid: Cid; bytes: Uint8Array }[] } {
    const handle = this.existing(did);
    const root = handle.root();
    if (!root) throw notFound(did);
    return { root: root.cid, blocks: recordProof(handle.blocks, root.cid, collection, rkey) };
  }

  /** Blocks by CID (sync.getBlocks). */
  getBlocks(did: string, cids: Cid[]): { found: [Cid, Uint8Array][]; missing: Cid[] } {
    return this.existing(did).blocks.getMany(cids);
  }

  /** CIDs of blobs referenced by records; with `since`, by records written after that rev. */
  listBlobs(did: string, opts: { since?: string; limit: number; cursor?: string }): string[] {
    const handle = this.existing(did);
    const params: (string | number)[] = [];
    let where = '1 = 1';
    if (opts.since !== undefined) {
      where += ' AND record.repo_rev > ?';
      params.push(opts.since);
    }
    if (opts.cursor !== undefined) {
      where += ' AND record_blob.blob_cid > ?';
      params.push(opts.cursor);
    }
    params.push(opts.limit);
    const rows = handle
      .stmt(
        `SELECT DISTINCT record_blob.blob_cid AS cid FROM record_blob
         JOIN record ON record.uri = record_blob.record_uri
         WHERE ${where} ORDER BY record_blob.blob_cid LIMIT ?`,
      )
      .all(...params) as { cid: string }[];
    return rows.map((r) => r.cid);
  }

  /** Metadata of a stored blob of this account (permanent or not), or undefined. */
  getBlobInfo(did: string, cid: Cid): (BlobInfo & { temporary: boolean }) | undefined {
    const row = this.existing(did).sql.getBlob.get(formatCid(cid)) as
      { cid: string; mime_type: string; size: number; temp_key: string | null } | undefined;
    if (!row) return undefined;
    return { cid, mimeType: row.mime_type, size: row.size, temporary: row.temp_key !== null };
  }

  // ---------------------------------------------------------------------------------------------
  // Blobs

  /**
   * Streams an upload into the blobstore as a temporary blob and records it. The type stored is
   * the sniffed one when recognised, else the client's. Re-uploading a stored blob is a no-op.
   */
  async uploadBlob(
    did: string,
    body: AsyncIterable<Uint8Array>,
    declaredMimeType: string | undefined,
    maxSize: number,
  ): Promise<BlobInfo> {
    this.existing(did);
    const stored = await this.blobstore.putTemp(did, body, maxSize);
    // Looked up again after the upload: the database may have been closed and reopened meanwhile.
    const handle = this.existing(did);
    const mimeType = stored.sniffedMimeType ?? declaredMimeType ?? 'application/octet-stream';
    const cidText = formatCid(stored.cid);
    const existing = handle.sql.getBlob.get(cidText) as { mime_type: string; temp_key: string | null } | undefined;
    if (existing) {
      await this.blobstore.deleteTemp(did, stored.tempKey);
      return { cid: stored.cid, mimeType: existing.mime_type, size: stored.size };
    }
    handle.sql.insertBlob.run(cidText, mimeType, stored.size, stored.tempKey, new Date().toISOString());
    if (handle.sql.blobInUse.get(cidText)) {
      // Records already reference it (a repository imported before its blobs were uploaded):
      // it is part of the repository now, not a temporary upload.
      await this.withWriteLock(did, async () => {
        await this.blobstore.makePermanent(did, stored.tempKey, stored.cid);
        handle.sql.makeBlobPermanent.run(cidText);
      });
    }
    return { cid: stored.cid, mimeType, size: stored.size };
  }

  /** Opens a blob of this account for reading, with its recorded type; undefined when absent. */
  async readBlob(
    did: string,
    cid: Cid,
  ): Promise<{ mimeType: string; size: number; stream: AsyncIterable<Uint8Array> } | undefined> {
    const info = this.getBlobInfo(did, cid);
    if (!info || info.temporary) return undefined;
    const read = await this.blobstore.read(did, cid);
    if (!read) return undefined;
    return { mimeType: info.mimeType, size: read.size, stream: read.stream };
  }

  /** Removes temporary uploads older than `maxAgeMs` that no committed record references. */
  async sweepTemporaryBlobs(maxAgeMs: number): Promise<number> {
    const cutoff = new Date(Date.now() - maxAgeMs).toISOString();
    let removed = 0;
    for (const [did, handle] of [...this.open]) {
      const rows = handle.db
        .prepare('SELECT cid, temp_key FROM blob WHERE temp_key IS NOT NULL AND created_at < ?')
        .all(cutoff) as { cid: string; temp_key: string }[];
      for (const row of rows) {
        await this.withWriteLock(did, async () => {
          if (this.open.get(did) !== handle) return; // closed meanwhile; the next sweep sees it
          if (handle.sql.blobInUse.get(row.cid)) return;
          handle.sql.deleteBlob.run(row.cid);
          await this.blobstore.deleteTemp(did, row.temp_key);
          removed++;
        });
      }
    }
    // Files whose rows are gone (or whose account database is closed) age out on disk.
    removed += await this.blobstore.sweepTemp(maxAgeMs * 2);
    return removed;
  }

  // ---------------------------------------------------------------------------------------------
  // Writes

  /**
   * Applies prepared writes as one signed commit. `swapCommit` must equal the current commit
   * when given. Swap checks on records, blob checks, the engine's commit and the database
   * transaction all happen under the account's write lock; the promise settles only after the
   * transaction has committed.
   *
   * Requests that arrive while the account's previous commit is being made are coalesced into
   * one commit (group commit): each gets its own results and the shared commit, exactly as if it
   * had been an applyWrites with the others. This amortises signing and the transaction over
   * concurrent writers. A request with swapCommit, or touching a record another queued request
   * touches, is committed on its own; a request failing its checks fails alone.
   */
  applyWrites(did: string, writes: PreparedWrite[], opts: { swapCommit?: Cid } = {}): Promise<CommitResult> {
    return new Promise<CommitResult>((resolve, reject) => {
      let queue = this.queues.get(did);
      if (!queue) {
        queue = [];
        this.queues.set(did, queue);
      }
      queue.push({ writes, swapCommit: opts.swapCommit, resolve, reject });
      // Start after the requests already readable on other sockets have been parsed and queued
      // too (setImmediate runs after the event loop's I/O phase): otherwise each request would
      // be committed alone before the next one is even read, and nothing would be coalesced.
      if (queue.length === 1) setImmediate(() => void this.drain(did, queue));
    });
  }

  /** Commits queued requests batch by batch until the account's queue is empty. */
  private async drain(did: string, queue: QueuedWrite[]): Promise<void> {
    while (queue.length > 0) {
      const batch = takeBatch(queue);
      const deferred = await this.withWriteLock(did, () => this.commitBatch(did, batch)).catch((err: unknown) => {
        for (const item of batch) item.reject(err);
        return [];
      });
      queue.splice(0, batch.length, ...deferred);
      // Let requests that arrived during this commit join the next one.
      if (queue.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (this.queues.get(did) === queue) this.queues.delete(did);
  }

  /**
   * Checks each request of the batch, then commits the ones that passed together. Returns the
   * requests left for the next commit: when the shared commit would make a #commit event over
   * the firehose's 2,000,000-byte limit (the queue's estimate fell short), only a leading part
   * of the batch is committed; the rest goes back to the head of the queue and is checked again.
   */
  private async commitBatch(did: string, batch: QueuedWrite[]): Promise<QueuedWrite[]> {
    const handle = this.existing(did);
    const root = handle.root();
    if (!root) throw notFound(did);
    const accepted: { item: QueuedWrite; newBlobs: { cid: Cid; tempKey: string }[] }[] = [];
    for (const item of batch) {
      try {
        if (item.swapCommit && !cidEquals(item.swapCommit, root.cid)) {
          throw new ActorStoreError('InvalidSwap', `Commit was at ${formatCid(root.cid)}`);
        }
        this.checkRecordSwaps(handle, item.writes);
        accepted.push({ item, newBlobs: this.checkBlobs(handle, item.writes) });
      } catch (err) {
        item.reject(err);
      }
    }
    if (accepted.length === 0) return [];
    const writesOf = (count: number) => accepted.slice(0, count).flatMap((a) => a.item.writes);
    let committedCount = accepted.length;
    try {
      const key = await this.getSigningKey(did);
      let commit = await writeRepo(handle.blocks, root.cid, writesOf(committedCount), key);
      while (committedCount > 1 && eventCarBytes(commit) > MAX_COMMIT_BLOCKS_BYTES) {
        committedCount = Math.ceil(committedCount / 2);
        commit = await writeRepo(handle.blocks, root.cid, writesOf(committedCount), key);
      }
      const committed = accepted.slice(0, committedCount);
      const newBlobs = new Map<string, { cid: Cid; tempKey: string }>();
      for (const a of committed) for (const blob of a.newBlobs) newBlobs.set(formatCid(blob.cid), blob);
      // Blob files move to their permanent place before the transaction: if the process dies in
      // between, the rows still say "temporary" and makePermanent is idempotent on retry.
      for (const blob of newBlobs.values()) {
        try {
          await this.blobstore.makePermanent(did, blob.tempKey, blob.cid);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          // The upload aged out of the temporary area before a record referenced it.
          handle.sql.deleteBlob.run(formatCid(blob.cid));
          throw new ActorStoreError('BlobNotFound', `Could not find blob: ${formatCid(blob.cid)} (upload it again)`);
        }
      }
      const dereferenced: Cid[] = [];
      this.persistCommit(handle, commit, writesOf(committedCount), (cids) => dereferenced.push(...cids));
      // The commit is durable; a blob file that fails to go is only wasted space, not an error.
      if (dereferenced.length > 0) await this.blobstore.delete(did, dereferenced).catch(() => {});
      const meta = { cid: commit.cid, rev: commit.rev };
      for (const { item } of committed) {
        const results: WriteResult[] = item.writes.map((w) => ({
          action: w.action,
          uri: atUri(did, w.collection, w.rkey),
          cid: w.action === 'delete' ? null : w.cid,
          validationStatus: w.action === 'delete' ? undefined : w.validationStatus,
        }));
        item.resolve({ commit: meta, results });
      }
    } catch (err) {
      for (const { item } of accepted.slice(0, committedCount)) item.reject(err);
    }
    return accepted.slice(committedCount).map((a) => a.item);
  }

  private checkRecordSwaps(handle: ActorHandle, writes: PreparedWrite[]): void {
    for (const write of writes) {
      const row = handle.sql.getRecordCid.get(atUri(handle.did, write.collection, write.rkey)) as
        { cid: string } | undefined;
      const current = row ? parseCid(row.cid) : null;
      if (write.action === 'create' && current) {
        throw new ActorStoreError('InvalidRequest', `Record already exists at ${write.path}`);
      }
      if (write.action === 'delete' && !current) {
        throw new ActorStoreError('InvalidRequest', `Could not find record to delete at ${write.path}`);
      }
      if (write.swapCid === undefined) continue;
      const matches = write.swapCid === null ? current === null : current !== null && cidEquals(current, write.swapCid);
      if (!matches) {
        throw new ActorStoreError('InvalidSwap', `Record was at ${current ? formatCid(current) : 'null'}`);
      }
    }
  }

  /** Every blob a record references must have been uploaded to this account. */
  private checkBlobs(handle: ActorHandle, writes: PreparedWrite[]): { cid: Cid; tempKey: string }[] {
    const temporary: { cid: Cid; tempKey: string }[] = [];
    const seen = new Set<string>();
    for (const write of writes) {
      if (write.action === 'delete') continue;
      for (const ref of write.blobs) {
        if (seen.has(ref.cid)) continue;
        seen.add(ref.cid);
        const row = handle.sql.getBlob.get(ref.cid) as { temp_key: string | null } | undefined;
        if (!row) throw new ActorStoreError('BlobNotFound', `Could not find blob: ${ref.cid}`);
        if (row.temp_key !== null) temporary.push({ cid: parseCid(ref.cid), tempKey: row.temp_key });
      }
    }
    return temporary;
  }

  /**
   * Writes one commit in a single transaction: blocks (new in, unreferenced out), records,
   * blob links and status, the new root, then the commit listeners.
   */
  private persistCommit(
    handle: ActorHandle,
    commit: RepoCommit,
    writes: PreparedWrite[],
    onDereferencedBlobs: (cids: Cid[]) => void,
  ): void {
    const { did, sql, blocks } = handle;
    const now = new Date().toISOString();
    const dereferenced: Cid[] = [];
    handle.db.transaction(() => {
      for (const { cid, bytes } of commit.newBlocks.entries()) blocks.putBlock(cid, bytes, commit.rev);
      const touchedBlobs = new Set<string>();
      for (const write of writes) {
        const uri = atUri(did, write.collection, write.rkey);
        for (const row of sql.blobsOfRecord.all(uri) as { blob_cid: string }[]) touchedBlobs.add(row.blob_cid);
        sql.unlinkRecordBlobs.run(uri);
        if (write.action === 'delete') {
          sql.deleteRecord.run(uri);
          continue;
        }
        sql.upsertRecord.run(uri, formatCid(write.cid), write.collection, write.rkey, commit.rev, now);
        for (const ref of write.blobs) {
          sql.linkBlob.run(ref.cid, uri);
          sql.makeBlobPermanent.run(ref.cid);
        }
      }
      for (const cid of commit.removedCids) {
        // Two records with identical content share a block: keep it while any record uses it.
        if (sql.recordCidInUse.get(formatCid(cid))) continue;
        if (commit.newBlocks.has(cid)) continue;
        blocks.deleteBlock(cid);
      }
      for (const blobCid of touchedBlobs) {
        if (sql.blobInUse.get(blobCid)) continue;
        sql.deleteBlob.run(blobCid);
        dereferenced.push(parseCid(blobCid));
      }
      sql.putRoot.run(did, formatCid(commit.cid), commit.rev, now);
      if (this.listeners.length > 0) {
        const event: CommitEvent = {
          did,
          commit: commit.cid,
          rev: commit.rev,
          since: commit.since,
          prevData: commit.prevData,
          ops: commit.ops,
          blocks: commit.eventBlocks,
          removedCids: commit.removedCids,
        };
        for (const listener of this.listeners) listener(event, handle.db);
      }
    })();
    this.indexRoot.run(did, formatCid(commit.cid), commit.rev);
    blocks.cacheCommitted(Array.from(commit.newBlocks.entries(), (e) => [e.cid, e.bytes] as [Cid, Uint8Array]));
    onDereferencedBlobs(dereferenced);
  }

  /** Closes every open account database. */
  close(): void {
    clearInterval(this.sweepTimer);
    for (const handle of this.open.values()) handle.db.close();
    this.open.clear();
    this.rootIndex.close();
  }
}
