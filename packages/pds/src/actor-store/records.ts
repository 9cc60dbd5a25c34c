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
  const row = handle.sql.getRecordWithBlock.get(uri) as [string, Uint8Array | null, string | null] | undefined;
  if (!row || !row[1]) return undefined;
  // Stored CIDs are in canonical text form, so text equality is CID equality.
  if (cid && formatCid(cid) !== row[0]) return undefined;
  const record: StoredRecord = { uri, cid: row[0], value: decode(row[1]) };
  if (row[2] !== null) record.takedownRef = row[2];
  return record;
}

/**
 * Sets or clears (null) a record's takedown; the record's current CID, or undefined when there
 * is no such record. Record writes keep the column (their upsert leaves it alone).
 */
export function setRecordTakedown(
  handle: ActorHandle,
  collection: string,
  rkey: string,
  ref: string | null,
): string | undefined {
  const row = handle
    .stmt('UPDATE record SET takedown_ref = ? WHERE uri = ? RETURNING cid')
    .get(ref, atUri(handle.did, collection, rkey)) as { cid: string } | undefined;
  return row?.cid;
}

/** A record's current CID and takedown, or undefined when there is no such record. */
export function getRecordTakedown(
  handle: ActorHandle,
  collection: string,
  rkey: string,
): { cid: string; takedownRef: string | null } | undefined {
  const row = handle
    .stmt('SELECT cid, takedown_ref FROM record WHERE uri = ?')
    .get(atUri(handle.did, collection, rkey)) as { cid: string; takedown_ref: string | null } | undefined;
  return row ? { cid: row.cid, takedownRef: row.takedown_ref } : undefined;
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
      `SELECT uri, cid, rkey, ${RECORD_BLOCK} AS content, takedown_ref FROM record
       WHERE collection = ? ${opts.cursor !== undefined ? `AND rkey ${compare} ?` : ''}
       ORDER BY rkey ${order} LIMIT ?`,
    )
    .all(...(opts.cursor !== undefined ? [collection, opts.cursor, opts.limit] : [collection, opts.limit])) as {
    uri: string;
    cid: string;
    rkey: string;
    content: Uint8Array | null;
    takedown_ref: string | null;
  }[];
  const records: StoredRecord[] = [];
  for (const row of rows) {
    // A taken-down record is left out of the page, as the reference leaves it out.
    if (row.content && row.takedown_ref === null)
      records.push({ uri: row.uri, cid: row.cid, value: decode(row.content) });
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

/** Total size of the account's blobs. */
export function blobBytes(handle: ActorHandle): number {
  return (handle.stmt('SELECT coalesce(sum(size), 0) AS n FROM blob').get() as { n: number }).n;
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
