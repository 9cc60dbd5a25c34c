/**
 * Reading a repository: records (with their blocks), collections, counts, proofs and blocks.
 * Reads take no lock: SQLite (WAL) gives each statement a consistent snapshot, and the root row
 * changes in the same transaction as the blocks it points to.
 */
import { decode } from '@atcute/cbor';
import { type Cid, formatCid, parseCid } from '@portage/atproto/cid';
import { atUri, repoNotFound } from './errors.ts';
import { type ActorHandle, RECORD_BLOCK } from './open-stores.ts';
import { recordProof } from './repo-engine.ts';
import type { RepoStatusCounts, StoredRecord } from './types.ts';

/** The current record at collection/rkey, or undefined. With `cid`, only that version. */
export function getRecord(handle: ActorHandle, collection: string, rkey: string, cid?: Cid): StoredRecord | undefined {
  const uri = atUri(handle.did, collection, rkey);
  // Record blocks bypass the block cache: it keeps the tree nodes writes need, and one
  // statement for row and block costs less than a cache lookup after the row's own read.
  const row = handle.sql.getRecordWithBlock.get(uri) as [string, Uint8Array | null] | undefined;
  if (!row || !row[1]) return undefined;
  // Stored CIDs are in canonical text form, so text equality is CID equality.
  if (cid && formatCid(cid) !== row[0]) return undefined;
  return { uri, cid: row[0], value: decode(row[1]) };
}

/** The CID of the current record at a path, or undefined (swap checks, putRecord). */
export function getRecordCid(handle: ActorHandle, collection: string, rkey: string): Cid | undefined {
  const row = handle.sql.getRecordCid.get(atUri(handle.did, collection, rkey)) as { cid: string } | undefined;
  return row ? parseCid(row.cid) : undefined;
}

/**
 * A page of records of one collection ordered by rkey, newest (highest) first unless
 * `reverse`. `cursor` is the last rkey of the previous page.
 */
export function listRecords(
  handle: ActorHandle,
  collection: string,
  opts: { limit: number; cursor?: string; reverse?: boolean },
): { records: StoredRecord[]; cursor: string | undefined } {
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

/** A record written by a commit after some rev (read-after-write). */
export interface RecordWrittenSince {
  uri: string;
  collection: string;
  rkey: string;
  indexedAt: string;
}

/**
 * Records of `collections` written after `rev`, oldest first, at most `limit`; undefined when
 * no record is as old as `rev` (the rev is then from another history of the repository, e.g. from
 * before it moved here, and "after" means nothing).
 */
export function recordsWrittenSince(
  handle: ActorHandle,
  rev: string,
  collections: readonly string[],
  limit: number,
): RecordWrittenSince[] | undefined {
  if (!handle.stmt('SELECT 1 FROM record WHERE repo_rev <= ? LIMIT 1').get(rev)) return undefined;
  return handle
    .stmt(
      `SELECT uri, collection, rkey, indexed_at AS indexedAt FROM record
       WHERE repo_rev > ? AND collection IN (${collections.map(() => '?').join(', ')})
       ORDER BY repo_rev ASC LIMIT ?`,
    )
    .all(rev, ...collections, limit) as RecordWrittenSince[];
}

/** Collections that hold at least one record (describeRepo). */
export function listCollections(handle: ActorHandle): string[] {
  const rows = handle.stmt('SELECT DISTINCT collection FROM record ORDER BY collection').all() as {
    collection: string;
  }[];
  return rows.map((r) => r.collection);
}

/** Number of records in the repository. */
export function countRecords(handle: ActorHandle): number {
  return (handle.stmt('SELECT count(*) AS n FROM record').get() as { n: number }).n;
}

/**
 * The root and what the repository holds (checkAccountStatus). Read on the account's own
 * connection in one synchronous step, so no write lands between the counts.
 */
export function repoStatusCounts(handle: ActorHandle): RepoStatusCounts {
  const root = handle.root();
  if (!root) throw repoNotFound(handle.did);
  const one = (sql: string) => (handle.stmt(sql).get() as { n: number }).n;
  return {
    root,
    blocks: one('SELECT count(*) AS n FROM repo_block'),
    records: one('SELECT count(*) AS n FROM record'),
    expectedBlobs: one('SELECT count(DISTINCT blob_cid) AS n FROM record_blob'),
    importedBlobs: one(
      'SELECT count(DISTINCT record_blob.blob_cid) AS n FROM record_blob JOIN blob ON blob.cid = record_blob.blob_cid',
    ),
  };
}

/** The blocks proving the presence (or absence) of a record in the current commit. */
export function getRecordProof(
  handle: ActorHandle,
  collection: string,
  rkey: string,
): { root: Cid; blocks: { cid: Cid; bytes: Uint8Array }[] } {
  const root = handle.root();
  if (!root) throw repoNotFound(handle.did);
  return { root: root.cid, blocks: recordProof(handle.blocks, root.cid, collection, rkey) };
}
