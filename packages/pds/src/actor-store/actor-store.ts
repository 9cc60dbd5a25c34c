/**
 * The actor store: every account's repository, records index and blob metadata, one SQLite file
 * per account under `<directory>/<shard>/<did>/`. Endpoints and the migration service talk to
 * this service only; it is the one door to those files, and composes the modules that do the
 * work, one job each:
 *
 *   open-stores.ts   opening account stores and keeping the recently used ones open (LRU)
 *   write-lock.ts    one writer per repository at a time
 *   group-commit.ts  coalescing concurrent writes into shared commits
 *   commit.ts        checking, building and persisting a commit (and re-signing the head)
 *   records.ts       record reads, proofs, counts
 *   blobs.ts         the blob index (uploads, references, the temporary-blob sweep)
 *   bulk-import.ts   replacing a whole repository (importRepo)
 *   root-index.ts    every repository's current root in one small database (listRepos)
 *   signing-keys.ts  each account's signing key file
 *   db.ts            the store's schema, versions and connection settings
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Cid, parseCid } from '@portage/atproto/cid';
import type { ExportableSigningKey } from '@portage/atproto/crypto';
import type { StagedRepo } from '@portage/atproto/repo/import';
import type { BlobStore } from '../blobstore/blobstore.ts';
import { BlobIndex } from './blobs.ts';
import { type ImportedRepo, replaceRepository } from './bulk-import.ts';
import { RepoWriter, resignHead } from './commit.ts';
import { type SqliteDb, useRollbackJournal } from './db.ts';
import { ActorStoreError, repoNotFound } from './errors.ts';
import { GroupCommit, type QueuedWrite } from './group-commit.ts';
import { type ActorHandle, OpenStores } from './open-stores.ts';
import type { PreparedWrite } from './prepare-writes.ts';
import * as records from './records.ts';
import { RootIndex } from './root-index.ts';
import { SigningKeys } from './signing-keys.ts';
import { openSnapshot, snapshotCar } from './snapshot-car.ts';
import type { BlobInfo, CommitListener, CommitResult, RepoRoot, RepoStatusCounts, StoredRecord } from './types.ts';
import { WriteLocks } from './write-lock.ts';

export { ActorStoreError } from './errors.ts';
export type { ImportedRepo } from './bulk-import.ts';

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

export class ActorStore {
  readonly directory: string;
  readonly blobstore: BlobStore;
  private readonly listeners: CommitListener[] = [];
  private readonly locks = new WriteLocks();
  private readonly rootIndex: RootIndex;
  private readonly stores: OpenStores;
  private readonly keys: SigningKeys;
  private readonly writer: RepoWriter;
  private readonly groupCommit: GroupCommit;
  private readonly blobs: BlobIndex;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: ActorStoreOptions) {
    this.directory = options.directory;
    this.blobstore = options.blobstore;
    this.rootIndex = new RootIndex(join(options.directory, 'repo-roots.sqlite'));
    this.stores = new OpenStores({
      directory: options.directory,
      blockCacheBytes: options.blockCacheBytes,
      maxOpen: options.maxOpenStores,
      busy: (did) => this.locks.busy(did),
      onOpen: (handle) => this.indexRootOf(handle),
    });
    this.keys = new SigningKeys((did) => this.stores.keyPath(did), join(this.directory, 'reserved-keys'));
    this.writer = new RepoWriter({ blobstore: this.blobstore, rootIndex: this.rootIndex, listeners: this.listeners });
    this.groupCommit = new GroupCommit(this.locks, (did, batch) => this.commitBatch(did, batch));
    this.blobs = new BlobIndex(this.stores, this.locks, this.blobstore);
    const sweepEvery = options.tempBlobSweepIntervalMs ?? 10 * 60 * 1000;
    if (sweepEvery > 0) {
      const maxAge = options.tempBlobMaxAgeMs ?? 60 * 60 * 1000;
      this.sweepTimer = setInterval(() => {
        this.sweepTemporaryBlobs(maxAge).catch(() => {});
      }, sweepEvery);
      this.sweepTimer.unref();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Stores

  /**
   * The account's open database, or undefined when it has no repository (the sequencer reads
   * its outbox through this at start-up).
   */
  database(did: string): SqliteDb | undefined {
    if (!this.stores.has(did)) return undefined;
    return this.stores.handle(did).db;
  }

  /** Directory of one account: sharded by a hash of the DID so no directory grows huge. */
  accountDirectory(did: string): string {
    return this.stores.accountDirectory(did);
  }

  /** True when a repository exists for `did`. */
  exists(did: string): boolean {
    if (!this.stores.has(did)) return false;
    return this.stores.handle(did).root() !== undefined;
  }

  /** The current root from the shared index (no per-account database opened). */
  getRootIndexed(did: string): RepoRoot | undefined {
    return this.rootIndex.get(did);
  }

  private indexRootOf(handle: ActorHandle): void {
    const root = handle.root();
    if (root) this.rootIndex.set(handle.did, root);
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

  // ---------------------------------------------------------------------------------------------
  // Repository lifecycle

  /**
   * Creates the repository of a new account: stores its signing key and writes the first signed
   * commit over an empty MST. Called by createAccount.
   */
  async create(did: string, signingKey: ExportableSigningKey): Promise<RepoRoot> {
    return this.locks.run(did, async () => {
      const handle = this.stores.handle(did);
      if (handle.root()) throw new ActorStoreError('RepoAlreadyExists', `a repository already exists for ${did}`);
      await this.keys.write(did, signingKey);
      return this.writer.createRepository(handle, signingKey);
    });
  }

  /**
   * Runs `fn` on the account's own database connection with its write lock held, for
   * whole-repository operations that do not fit the commit path. Other requests share the
   * connection, so any transaction `fn` opens must be synchronous. Afterwards the account gets a
   * fresh handle (an empty block cache: no block of a replaced repository is served from memory)
   * and the shared root index follows the new root; queued writes commit after it, on the new root.
   */
  async withRepoDb<T>(did: string, fn: (db: SqliteDb) => T | Promise<T>): Promise<T> {
    return this.withRepoHandle(did, (handle) => fn(handle.db));
  }

  private async withRepoHandle<T>(did: string, fn: (handle: ActorHandle) => T | Promise<T>): Promise<T> {
    return this.locks.run(did, async () => {
      const handle = this.stores.existing(did);
      try {
        return await fn(handle);
      } finally {
        this.stores.refresh(handle);
        this.indexRootOf(handle);
      }
    });
  }

  /**
   * Runs `write`, a bulk transaction on the account's own connection (through withRepoDb), with
   * the database in rollback-journal mode for its duration. In WAL mode every page it writes
   * would be written twice: into the WAL by its commit, and into the database file again by a
   * checkpoint (and the checkpoint stalls whichever request's commit sets it off). With a
   * rollback journal the new pages go straight into the database file and the journal keeps
   * only the few existing pages the write changes; the commit syncs both, so the write is
   * durable once it returns. Switching modes needs the connection to be the file's only one:
   * when another is open (a tool reading the file), SQLite refuses at once and the write runs in
   * WAL mode like any other.
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

  /**
   * Replaces the account's whole repository with `repo` (importRepo), verifying its tree as it
   * is written, in one bulk transaction: a repository that fails any check rolls back and the
   * old one stays. `stagedInMemory`: the staged blocks are in memory (then they are written in
   * CID order). Blob rows (uploads) are kept.
   */
  importRepository(did: string, repo: StagedRepo, opts: { stagedInMemory: boolean }): Promise<ImportedRepo> {
    return this.bulkWrite(did, (db) => replaceRepository(db, did, repo, opts.stagedInMemory));
  }

  /**
   * Makes the head commit signed by the account's key here (activation after a move), under a
   * new rev; a head it already signed is kept. Returns the head commit and its block.
   */
  async resignHead(did: string): Promise<{ cid: Cid; bytes: Uint8Array; rev: string }> {
    const key = await this.keys.get(did);
    return this.withRepoHandle(did, (handle) => resignHead(handle, key));
  }

  /** Deletes an account's repository, records and blobs. */
  async destroy(did: string): Promise<void> {
    await this.locks.run(did, async () => {
      this.stores.closeOne(did);
      this.keys.forget(did);
      this.rootIndex.delete(did);
      await rm(this.accountDirectory(did), { recursive: true, force: true });
      await this.blobstore.deleteAll(did);
    });
  }

  /** Reserves a signing key for an account to be created (see SigningKeys.reserve); returns its did:key. */
  reserveSigningKey(did: string | undefined): Promise<string> {
    return this.keys.reserve(did);
  }

  /** The key reserved for `did`, if any. */
  reservedSigningKey(did: string): Promise<ExportableSigningKey | undefined> {
    return this.keys.reserved(did);
  }

  /** Drops `did`'s reservation (its account now holds the key). */
  clearReservedSigningKey(did: string): Promise<void> {
    return this.keys.clearReserved(did);
  }

  /** The account's repository signing key (also what service-auth JWTs are signed with). */
  getSigningKey(did: string): Promise<ExportableSigningKey> {
    return this.keys.get(did);
  }

  // ---------------------------------------------------------------------------------------------
  // Writes

  /**
   * Applies prepared writes as one signed commit. `swapCommit` must equal the current commit
   * when given. Swap checks on records, blob checks, the engine's commit and the database
   * transaction all happen under the account's write lock; the promise settles only after the
   * transaction has committed. Concurrent requests share commits (group-commit.ts): each gets
   * its own results and the shared commit, exactly as if it had been an applyWrites with the
   * others; a request failing its checks fails alone.
   */
  applyWrites(did: string, writes: PreparedWrite[], opts: { swapCommit?: Cid } = {}): Promise<CommitResult> {
    return this.groupCommit.enqueue(did, writes, opts.swapCommit);
  }

  private commitBatch(did: string, batch: QueuedWrite[]): Promise<QueuedWrite[]> {
    return this.writer.commitBatch(this.stores.existing(did), () => this.keys.get(did), batch);
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  getRoot(did: string): RepoRoot | undefined {
    if (!this.stores.has(did)) return undefined;
    return this.stores.handle(did).root();
  }

  /** The current record at collection/rkey, or undefined. With `cid`, only that version. */
  getRecord(did: string, collection: string, rkey: string, cid?: Cid): StoredRecord | undefined {
    return records.getRecord(this.stores.existing(did), collection, rkey, cid);
  }

  /** Takes a record down (`ref`) or restores it (null); its current CID, or undefined when absent. */
  setRecordTakedown(did: string, collection: string, rkey: string, ref: string | null): string | undefined {
    return records.setRecordTakedown(this.stores.existing(did), collection, rkey, ref);
  }

  /** A record's current CID and takedown (admin.getSubjectStatus), or undefined when absent. */
  getRecordTakedown(
    did: string,
    collection: string,
    rkey: string,
  ): { cid: string; takedownRef: string | null } | undefined {
    return records.getRecordTakedown(this.stores.existing(did), collection, rkey);
  }

  /** Takes a blob down (`ref`) or restores it (null); false when the account has no such blob. */
  setBlobTakedown(did: string, cid: Cid, ref: string | null): boolean {
    return this.blobs.setBlobTakedown(did, cid, ref);
  }

  /** The CID of the current record at a path, or undefined (swap checks, putRecord). */
  getRecordCid(did: string, collection: string, rkey: string): Cid | undefined {
    return records.getRecordCid(this.stores.existing(did), collection, rkey);
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
    return records.listRecords(this.stores.existing(did), collection, opts);
  }

  /** Records of `collections` written after `rev` (see records.recordsWrittenSince). */
  recordsWrittenSince(
    did: string,
    rev: string,
    collections: readonly string[],
    limit: number,
  ): records.RecordWrittenSince[] | undefined {
    return records.recordsWrittenSince(this.stores.existing(did), rev, collections, limit);
  }

  /** Collections that hold at least one record (describeRepo). */
  listCollections(did: string): string[] {
    return records.listCollections(this.stores.existing(did));
  }

  /** Number of records in the repository. */
  countRecords(did: string): number {
    return records.countRecords(this.stores.existing(did));
  }

  /** Bytes of the account's stored blobs (the admin page). */
  blobBytes(did: string): number {
    return records.blobBytes(this.stores.existing(did));
  }

  /** The root and the block, record and blob counts checkAccountStatus reports. */
  repoStatusCounts(did: string): RepoStatusCounts {
    return records.repoStatusCounts(this.stores.existing(did));
  }

  /**
   * The repository as a CAR stream: the commit first, then every block of the repository (with
   * `since`, only the blocks written by commits after that rev). It reads from its own read-only
   * connection inside one read transaction, so the export is a consistent snapshot however many
   * commits land while it streams, and it scans the blocks table in storage order instead of
   * looking each block up while walking the tree: CAR readers accept any order, and this is
   * also the order the reference PDS serves.
   */
  exportCar(did: string, since?: string): AsyncIterable<Uint8Array> {
    // Opened through the cache first, so an older store is upgraded before it is read.
    this.stores.existing(did);
    const snapshot = openSnapshot(this.stores.dbPath(did));
    try {
      const row = snapshot.prepare('SELECT cid FROM repo_root WHERE did = ?').get(did) as { cid: string } | undefined;
      if (!row) throw repoNotFound(did);
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
    return records.getRecordProof(this.stores.existing(did), collection, rkey);
  }

  /** Blocks by CID (sync.getBlocks). */
  getBlocks(did: string, cids: Cid[]): { found: [Cid, Uint8Array][]; missing: Cid[] } {
    return this.stores.existing(did).blocks.getMany(cids);
  }

  // ---------------------------------------------------------------------------------------------
  // Blobs

  /** CIDs of blobs referenced by records; with `since`, by records written after that rev. */
  listBlobs(did: string, opts: { since?: string; limit: number; cursor?: string }): string[] {
    return this.blobs.listBlobs(did, opts);
  }

  /** A page of blobs the records reference that have not been uploaded, ordered by CID. */
  listMissingBlobs(
    did: string,
    opts: { limit: number; cursor?: string },
  ): { blobs: { cid: string; recordUri: string }[]; cursor: string | undefined } {
    return this.blobs.listMissingBlobs(did, opts);
  }

  /** Metadata of a stored blob of this account (permanent or not), or undefined. */
  getBlobInfo(did: string, cid: Cid): (BlobInfo & { temporary: boolean; takedownRef: string | null }) | undefined {
    return this.blobs.getBlobInfo(did, cid);
  }

  /**
   * Streams an upload into the blobstore as a temporary blob and records it. The type stored is
   * the sniffed one when recognised, else the client's. Re-uploading a stored blob is a no-op.
   */
  uploadBlob(
    did: string,
    body: AsyncIterable<Uint8Array>,
    declaredMimeType: string | undefined,
    maxSize: number,
  ): Promise<BlobInfo> {
    return this.blobs.uploadBlob(did, body, declaredMimeType, maxSize);
  }

  /** Opens a blob of this account for reading, with its recorded type; undefined when absent. */
  readBlob(
    did: string,
    cid: Cid,
  ): Promise<{ mimeType: string; size: number; stream: AsyncIterable<Uint8Array> } | undefined> {
    return this.blobs.readBlob(did, cid);
  }

  /** Makes uploads the records already reference permanent (after an import; idempotent). */
  promoteReferencedBlobs(did: string): Promise<void> {
    return this.blobs.promoteReferencedBlobs(did);
  }

  /** Removes temporary uploads older than `maxAgeMs` that no committed record references. */
  sweepTemporaryBlobs(maxAgeMs: number): Promise<number> {
    return this.blobs.sweepTemporaryBlobs(maxAgeMs);
  }

  /** Closes every open account database. */
  close(): void {
    clearInterval(this.sweepTimer);
    this.stores.close();
    this.rootIndex.close();
  }
}
