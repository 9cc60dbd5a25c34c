/**
 * com.atproto.repo.importRepo, done the careful way: the CAR streams into a staging store
 * (memory up to a budget, a scratch file past it: never whole in memory), the commit is checked
 * (it names this account's DID and is signed by a key the DID has held), and then, in one
 * transaction on the account's own connection (ActorStore.withRepoDb), the old repository goes
 * and the tree is verified as it is written (every MST node and record present, hash-checked
 * and canonical). Only a repository that passes every check is committed: a CAR that fails any
 * of them rolls back and leaves the account exactly as it was.
 *
 * Re-importing is safe: the whole repository is replaced each time, so importing the same
 * CAR twice, or a newer export after an interrupted migration, ends in the same state as a
 * single import of the last one. Blobs already uploaded stay; the records' blob references
 * are indexed so listMissingBlobs can say what is still to come.
 */
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { type Cid, formatCid, parseCid } from '@portage/atproto/cid';
import { RepoError } from '@portage/atproto/repo/errors';
import { type StagedRepo, stageRepo } from '@portage/atproto/repo/import';
import type { ActorStore } from '../actor-store/actor-store.ts';
import type { SqliteDb } from '../actor-store/db.ts';
import type { BlobStore } from '../blobstore/blobstore.ts';
import { InvalidRequest, XrpcError } from '../xrpc/errors.ts';
import { type KeyHistorySources, signingKeysHeldBy } from './key-history.ts';
import { StagingBlockStore } from './staging-store.ts';

/** Default cap on an imported CAR: large enough for any real account (PDS_MAX_REPO_IMPORT_SIZE overrides). */
export const DEFAULT_MAX_REPO_IMPORT_BYTES = 4 * 1024 * 1024 * 1024;
/** SQLite page cache of the account's connection while an import writes (negative: KiB). */
const IMPORT_CACHE_SIZE = -64 * 1024;

/** The actor store's entry points a migration uses: the account's connection, for reads and with its write lock. */
export type RepoDbSource = Pick<ActorStore, 'database' | 'withRepoDb' | 'bulkWrite'>;

export interface RepoImportDeps extends KeyHistorySources {
  actorStore: RepoDbSource;
  blobstore: BlobStore;
  /** Directory for scratch staging files. */
  stagingDirectory: string;
}

export interface ImportSummary {
  commit: Cid;
  rev: string;
  records: number;
  /** Blocks written: the commit, every MST node and one per record. */
  blocks: number;
  /** Distinct blobs the records reference. */
  expectedBlobs: number;
}

/** Directory for staging files under the PDS data directory. */
export function stagingDirectoryFor(dataDirectory: string): string {
  return join(dataDirectory, 'import-staging');
}

/**
 * The account's own database connection (the actor store's), for reads. Each statement reads a
 * consistent snapshot; an import in progress is invisible until it commits.
 */
export function accountDatabase(actorStore: RepoDbSource, did: string): SqliteDb {
  const db = actorStore.database(did);
  if (!db) throw InvalidRequest(`No repository found for ${did}`, 'RepoNotFound');
  return db;
}

/**
 * Verifies the CAR in `body` as `did`'s repository and makes it the account's repository.
 * Throws a 400 whose error name says what was wrong (WrongDid, BadSignature, MissingRecord,
 * MissingNode, BadBlockHash, TruncatedCar, ...).
 */
export async function importRepository(
  deps: RepoImportDeps,
  did: string,
  body: AsyncIterable<Uint8Array>,
): Promise<ImportSummary> {
  // Looked up (round trips to the directory) while the CAR streams in; the commit check awaits it.
  const keys = signingKeysHeldBy(deps, did).then((held) => {
    if (held.length > 0) return held;
    throw new XrpcError(
      400,
      'InvalidDid',
      `Could not resolve a signing key for ${did}, so the import cannot be verified`,
    );
  });
  keys.catch(() => {}); // a CAR that fails before its commit is checked never awaits it
  const staging = new StagingBlockStore(deps.stagingDirectory);
  try {
    let staged: StagedRepo;
    try {
      staged = await stageRepo(body, { did, signingKeys: keys, staging });
    } catch (err) {
      throw importError(err);
    }
    const summary = await deps.actorStore.bulkWrite(did, (db) => replaceRepository(db, did, staged, staging));
    await promoteReferencedBlobs(deps, did);
    return summary;
  } finally {
    staging.dispose();
  }
}

function importError(err: unknown): unknown {
  if (err instanceof RepoError) {
    const prefix = err.code === 'BadSignature' ? 'Commit signature is not valid for this DID' : 'Invalid repository';
    return new XrpcError(400, err.code, `${prefix}: ${err.message}`);
  }
  return err;
}

/**
 * One transaction: every block, record and record->blob link of the old repository out, the
 * staged repository in, the root moved to its commit. Blob rows (uploads) are kept.
 *
 * The tree is verified inside the transaction, each node and record written as soon as it has
 * passed its checks, so every staged block is read once; a problem anywhere rolls the whole
 * transaction back, so nothing of a bad repository is ever visible and the old one stays.
 */
function replaceRepository(db: SqliteDb, did: string, repo: StagedRepo, staging: StagingBlockStore): ImportSummary {
  const now = new Date().toISOString();
  const rev = repo.rev;
  // The rev and the time are the same on every row: bound once per statement, not per row.
  const insertBlocks = new BatchInsert(
    db,
    'INSERT OR IGNORE INTO repo_block (cid, repo_rev, size, content)',
    '(?, @rev, ?, ?)',
    { rev },
  );
  const insertRecords = new BatchInsert(
    db,
    'INSERT INTO record (uri, cid, collection, rkey, repo_rev, indexed_at)',
    '(?, ?, ?, ?, @rev, @now)',
    { rev, now },
  );
  const linkBlob = db.prepare('INSERT OR IGNORE INTO record_blob (blob_cid, record_uri) VALUES (?, ?)');
  let counts = { records: 0, nodes: 0 };
  // Blocks staged in memory are written after the walk, in CID order: the primary key's B-tree
  // then grows at its end instead of taking random inserts all over. (Staged on disk, they are
  // written as the walk reaches them, so memory stays bounded.)
  const inCidOrder: PendingBlock[] | undefined = staging.spilled ? undefined : [];
  const putBlock = (cid: Cid, bytes: Uint8Array) => {
    if (inCidOrder) inCidOrder.push(pendingBlock(cid, bytes));
    else insertBlocks.add(cid.bytes, bytes.length, bytes);
  };
  // The transaction writes the whole repository: with the connection's everyday page cache
  // (a few MiB) its pages would spill and be read back as the B-trees grow; for the import's
  // duration the cache may hold them all (it shrinks back afterwards).
  const cacheSize = db.pragma('cache_size', { simple: true }) as number;
  db.pragma(`cache_size = ${IMPORT_CACHE_SIZE}`);
  try {
    db.transaction(() => {
      db.exec('DELETE FROM repo_block; DELETE FROM record; DELETE FROM record_blob;');
      // The secondary indexes go for the bulk insert and are rebuilt after it (inside the same
      // transaction, so no reader ever sees them missing): one sort per index is cheaper than
      // 20,000 scattered index inserts (record_cid is keyed by random CIDs).
      const indexes = secondaryIndexes(db);
      for (const index of indexes) db.exec(`DROP INDEX "${index.name}"`);
      insertBlocks.add(repo.commitCid.bytes, repo.commitBytes.length, repo.commitBytes);
      counts = repo.verifyTree({
        node(cid, bytes) {
          putBlock(cid, bytes);
        },
        record(record, blobRefs) {
          putBlock(record.cid, record.bytes);
          const uri = `at://${did}/${record.collection}/${record.rkey}`;
          insertRecords.add(uri, formatCid(record.cid), record.collection, record.rkey);
          for (const ref of blobRefs) linkBlob.run(ref.cid, uri);
        },
      });
      insertRecords.flush();
      if (inCidOrder) {
        inCidOrder.sort(compareCids);
        for (const { cid, bytes } of inCidOrder) insertBlocks.add(cid.bytes, bytes.length, bytes);
      }
      insertBlocks.flush();
      for (const index of indexes) db.exec(index.sql);
      db.prepare(
        `INSERT INTO repo_root (did, cid, rev, indexed_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (did) DO UPDATE SET cid = excluded.cid, rev = excluded.rev, indexed_at = excluded.indexed_at`,
      ).run(did, formatCid(repo.commitCid), rev, now);
    })();
  } catch (err) {
    throw importError(err);
  } finally {
    db.pragma(`cache_size = ${cacheSize}`);
  }
  const expected = db.prepare('SELECT count(DISTINCT blob_cid) AS n FROM record_blob').get() as { n: number };
  return {
    commit: repo.commitCid,
    rev,
    records: counts.records,
    blocks: 1 + counts.nodes + counts.records,
    expectedBlobs: expected.n,
  };
}

/** Rows in one INSERT statement: one statement step per hundred rows instead of per row. */
const ROWS_PER_INSERT = 100;

/**
 * Buffers rows and inserts them a hundred to a statement. Binding and stepping a statement
 * costs about as much as the row's B-tree insert, and an import writes tens of thousands.
 */
class BatchInsert {
  readonly #many: Database.Statement;
  readonly #one: Database.Statement;
  readonly #constants: Record<string, unknown>;
  readonly #columns: number;
  readonly #values: unknown[] = [];

  /**
   * `insert` is the statement up to VALUES (`INSERT INTO t (a, b, c)`); `row` the values of one
   * row, `?` for what each row gives and `@name` for the `constants`, the same in every row
   * (`(?, ?, @c)`).
   */
  constructor(db: SqliteDb, insert: string, row: string, constants: Record<string, unknown>) {
    this.#many = db.prepare(`${insert} VALUES ${new Array(ROWS_PER_INSERT).fill(row).join(', ')}`);
    this.#one = db.prepare(`${insert} VALUES ${row}`);
    this.#constants = constants;
    this.#columns = row.split('?').length - 1;
  }

  /** One row: a value for each `?`. */
  add(...row: unknown[]): void {
    for (const value of row) this.#values.push(value);
    if (this.#values.length === ROWS_PER_INSERT * this.#columns) {
      this.#many.run(this.#values, this.#constants);
      this.#values.length = 0;
    }
  }

  flush(): void {
    for (let i = 0; i < this.#values.length; i += this.#columns) {
      this.#one.run(this.#values.slice(i, i + this.#columns), this.#constants);
    }
    this.#values.length = 0;
  }
}

/** The secondary indexes of the tables an import fills, with the SQL that recreates each. */
function secondaryIndexes(db: SqliteDb): { name: string; sql: string }[] {
  // sql is NULL for the indexes SQLite makes itself (primary keys): those stay.
  return db
    .prepare(
      `SELECT name, sql FROM sqlite_master
       WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ('repo_block', 'record', 'record_blob')`,
    )
    .all() as { name: string; sql: string }[];
}

/** A block waiting to be written, with the first digest bytes of its CID as a cheap sort key. */
interface PendingBlock {
  key: number;
  cid: Cid;
  bytes: Uint8Array;
}

/**
 * A sort key for a repository block: every CID in a repository is dag-cbor/sha-256, so the
 * digest orders them, and its first three bytes (a small integer: no allocation when compared)
 * settle nearly every comparison.
 */
function pendingBlock(cid: Cid, bytes: Uint8Array): PendingBlock {
  const b = cid.bytes;
  return { key: (b[4]! << 16) | (b[5]! << 8) | b[6]!, cid, bytes };
}

function compareCids(a: PendingBlock, b: PendingBlock): number {
  return a.key - b.key || Buffer.compare(a.cid.bytes, b.cid.bytes);
}

/**
 * Uploads arrive as temporary blobs (a blob no record references is garbage). During a
 * migration the records came first, by import, so an upload the records reference is part of
 * the repository already: move it to permanent storage, so neither the temporary-blob sweep
 * nor getBlob treats it as an orphan. Idempotent; called after imports, by
 * listMissingBlobs/checkAccountStatus and at activation.
 */
export async function promoteReferencedBlobs(deps: Pick<RepoImportDeps, 'actorStore' | 'blobstore'>, did: string) {
  const pending = accountDatabase(deps.actorStore, did)
    // Through the partial index of temporary blobs: only they are read, however many are stored.
    .prepare(
      `SELECT cid, temp_key AS tempKey FROM blob WHERE temp_key IS NOT NULL
       AND EXISTS (SELECT 1 FROM record_blob WHERE record_blob.blob_cid = blob.cid)`,
    )
    .all() as { cid: string; tempKey: string }[];
  if (pending.length === 0) return;
  await deps.actorStore.withRepoDb(did, async (db) => {
    const clear = db.prepare('UPDATE blob SET temp_key = NULL WHERE cid = ? AND temp_key = ?');
    for (const blob of pending) {
      await deps.blobstore.makePermanent(did, blob.tempKey, parseCid(blob.cid));
      clear.run(blob.cid, blob.tempKey);
    }
  });
}

/** A page of blobs the records reference that have not been uploaded, ordered by CID. */
export function listMissingBlobs(
  actorStore: RepoDbSource,
  did: string,
  opts: { limit: number; cursor?: string },
): { blobs: { cid: string; recordUri: string }[]; cursor: string | undefined } {
  const rows = accountDatabase(actorStore, did)
    .prepare(
      `SELECT record_blob.blob_cid AS cid, min(record_blob.record_uri) AS recordUri FROM record_blob
       LEFT JOIN blob ON blob.cid = record_blob.blob_cid
       WHERE blob.cid IS NULL AND record_blob.blob_cid > ?
       GROUP BY record_blob.blob_cid ORDER BY record_blob.blob_cid LIMIT ?`,
    )
    .all(opts.cursor ?? '', opts.limit) as { cid: string; recordUri: string }[];
  return { blobs: rows, cursor: rows.length === opts.limit ? rows.at(-1)?.cid : undefined };
}

/** What an imported CAR may weigh: PDS_MAX_REPO_IMPORT_SIZE, else a limit any real account fits in. */
export function maxImportBytes(configured: number | undefined): number {
  return configured ?? DEFAULT_MAX_REPO_IMPORT_BYTES;
}
