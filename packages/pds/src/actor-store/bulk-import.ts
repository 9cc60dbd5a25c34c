/**
 * Replacing a whole repository in one transaction (importRepo): every block, record and
 * record->blob link of the old repository out (record takedowns kept by URI), a staged and signature-checked repository in,
 * verified block by block as it is written. This is the bulk write path: rows go in a hundred
 * to a statement, blocks staged in memory in CID order, and the secondary indexes are rebuilt
 * once at the end rather than updated per row. ActorStore.importRepository runs it under the
 * account's write lock with a rollback journal (db.ts useRollbackJournal).
 */
import type Database from 'better-sqlite3';
import { type Cid, formatCid } from '@portage/atproto/cid';
import type { StagedRepo } from '@portage/atproto/repo/import';
import { REPOSITORY_TABLES, type SqliteDb } from './db.ts';

/** SQLite page cache of the account's connection while an import writes (negative: KiB). */
const IMPORT_CACHE_SIZE = -64 * 1024;

/** Records under a moderation takedown, by URI: few, and kept through any import. */
function recordTakedowns(db: SqliteDb): { uri: string; takedown_ref: string }[] {
  return db.prepare('SELECT uri, takedown_ref FROM record WHERE takedown_ref IS NOT NULL').all() as {
    uri: string;
    takedown_ref: string;
  }[];
}

/**
 * A takedown is of the record at its URI, not of one version of it (as the reference, whose
 * import updates rows in place): re-importing the repository must not lift it, whatever CID
 * the record has now. Records the new repository lacks simply have nothing to take down.
 */
function restoreRecordTakedowns(db: SqliteDb, takenDown: { uri: string; takedown_ref: string }[]): void {
  if (!takenDown.length) return;
  const restore = db.prepare('UPDATE record SET takedown_ref = ? WHERE uri = ?');
  for (const row of takenDown) restore.run(row.takedown_ref, row.uri);
}

/** What an import wrote. */
export interface ImportedRepo {
  commit: Cid;
  rev: string;
  records: number;
  /** Blocks written: the commit, every MST node and one per record. */
  blocks: number;
  /** Distinct blobs the records reference. */
  expectedBlobs: number;
}

/**
 * One transaction: every block, record and record->blob link of the old repository out, the
 * staged repository in, the root moved to its commit. Blob rows (uploads) are kept.
 *
 * The tree is verified inside the transaction, each node and record written as soon as it has
 * passed its checks, so every staged block is read once; a problem anywhere rolls the whole
 * transaction back, so nothing of a bad repository is ever visible and the old one stays.
 */
export function replaceRepository(db: SqliteDb, did: string, repo: StagedRepo, stagedInMemory: boolean): ImportedRepo {
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
  const inCidOrder: PendingBlock[] | undefined = stagedInMemory ? [] : undefined;
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
      const takenDown = recordTakedowns(db);
      for (const table of REPOSITORY_TABLES) db.exec(`DELETE FROM ${table}`);
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
      restoreRecordTakedowns(db, takenDown);
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
       WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (${REPOSITORY_TABLES.map(() => '?').join(', ')})`,
    )
    .all(...REPOSITORY_TABLES) as { name: string; sql: string }[];
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
