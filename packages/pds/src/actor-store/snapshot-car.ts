/**
 * getRepo's CAR, read from a snapshot of an account's database. A read-only connection holds
 * one read transaction, so every block comes from the same state of the repository however many
 * commits land while the response streams (WAL keeps that snapshot readable).
 *
 * The blocks table holds exactly the blocks reachable from the current commit (a commit deletes
 * what it dereferences, an import stores only the verified tree), so the export is a scan of
 * that table in key order rather than a walk of the tree: CAR readers accept any order, and this
 * is also the order the reference PDS serves. SQLite frames the blocks itself: one statement
 * returns a whole page of CAR sections (varint length, CID, bytes) concatenated into one blob,
 * so JavaScript handles one buffer per ~512 KB instead of two per block. That is what makes the
 * export cost a few nanoseconds per byte rather than microseconds per block.
 */
import { encodeCarHeader } from '@portage/atproto/car';
import type { Cid } from '@portage/atproto/cid';
import { varintLength, writeVarint } from '@portage/atproto/car/varint';
import Database from 'better-sqlite3';
import type { SqliteDb } from './db.ts';

/** Target size of one page (one response chunk); a single larger block makes a larger page. */
const PAGE_BYTES = 512 * 1024;
const MAX_PAGE_ROWS = 8192;

export function openSnapshot(path: string): SqliteDb {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma('mmap_size = 1073741824');
  db.exec('BEGIN');
  return db;
}

/**
 * Varints of section lengths, looked up in SQL: `substr` of a constant blob for lengths below
 * 16384 (every MST node and nearly every record), hex formatting for the rare larger blocks.
 */
const ONE_BYTE_VARINTS = Uint8Array.from({ length: 0x80 }, (_, i) => i);
const TWO_BYTE_VARINTS = (() => {
  const table = new Uint8Array(0x4000 * 2); // indexed by length; entries below 128 unused
  for (let n = 0x80; n < 0x4000; n++) writeVarint(n, table, n * 2);
  return table;
})();
const SECTION_LENGTH = 'length(cid) + length(content)';
const SECTION = `CASE
    WHEN ${SECTION_LENGTH} < 128 THEN substr(@oneByte, ${SECTION_LENGTH} + 1, 1)
    WHEN ${SECTION_LENGTH} < 16384 THEN substr(@twoBytes, 2 * (${SECTION_LENGTH}) + 1, 2)
    WHEN ${SECTION_LENGTH} < 2097152 THEN unhex(printf('%02x%02x%02x',
      (${SECTION_LENGTH} & 127) | 128, ((${SECTION_LENGTH} >> 7) & 127) | 128, ${SECTION_LENGTH} >> 14))
    ELSE unhex(printf('%02x%02x%02x%02x', (${SECTION_LENGTH} & 127) | 128,
      ((${SECTION_LENGTH} >> 7) & 127) | 128, ((${SECTION_LENGTH} >> 14) & 127) | 128, ${SECTION_LENGTH} >> 21))
  END || cid || content`;

/**
 * Pages are key ranges (after, upper]: the upper key is found by stepping @rows keys ahead,
 * and the page's blocks are then read, framed and concatenated in one aggregate (the
 * concatenation runs on text, which in a UTF-8 database is the bytes unchanged, and is cast
 * back to a blob). Ranges keep every statement a plain seek-and-scan of the primary key.
 */
const PAGE_END = 'SELECT cid FROM repo_block WHERE cid > @after ORDER BY cid LIMIT 1 OFFSET @rows - 1';
/** Blocks in (after, upper], or after `after` to the end for the last page. */
const range = (last: boolean, since: boolean) =>
  `cid > @after ${last ? '' : 'AND cid <= @upper'} AND cid != @commit ${since ? 'AND repo_rev > @since' : ''}`;
const pageBytes = (last: boolean, since: boolean) =>
  `SELECT coalesce(sum(size), 0) FROM repo_block WHERE ${range(last, since)}`;
const pageSections = (last: boolean, since: boolean) =>
  `SELECT CAST(group_concat(${SECTION}, '') AS BLOB) FROM repo_block WHERE ${range(last, since)}`;

/**
 * The CAR rooted at `commit`: the commit block first, then the other blocks of the snapshot
 * (with `since`, only those written after that rev), in pages of about 512 KB. Memory stays at
 * about one page whatever the repository's size. Closes the snapshot when done or abandoned.
 */
export async function* snapshotCar(
  snapshot: SqliteDb,
  commit: Cid,
  since: string | undefined,
): AsyncGenerator<Uint8Array> {
  try {
    const header = encodeCarHeader([commit]);
    const commitBytes = snapshot.prepare('SELECT content FROM repo_block WHERE cid = ?').pluck().get(commit.bytes) as
      Uint8Array | undefined;
    const commitSection = commitBytes ? commitBytes.length + commit.bytes.length : 0;
    const first = new Uint8Array(header.length + (commitBytes ? varintLength(commitSection) + commitSection : 0));
    first.set(header, 0);
    if (commitBytes) {
      let at = writeVarint(commitSection, first, header.length);
      first.set(commit.bytes, at);
      at += commit.bytes.length;
      first.set(commitBytes, at);
    }
    yield first;

    const withSince = since !== undefined;
    const pageEnd = snapshot.prepare(PAGE_END).pluck();
    const statements = (last: boolean) => ({
      bytes: snapshot.prepare(pageBytes(last, withSince)).pluck(),
      sections: snapshot.prepare(pageSections(last, withSince)).pluck(),
    });
    const middle = statements(false);
    const last = statements(true);
    const fixed = { commit: commit.bytes, ...(withSince ? { since } : {}) };
    const varints = { oneByte: ONE_BYTE_VARINTS, twoBytes: TWO_BYTE_VARINTS };
    let after: Uint8Array = new Uint8Array(0);
    let rows = 1024;
    for (;;) {
      // The page ends `rows` keys ahead, or at the end of the table when fewer remain.
      let upper = pageEnd.get({ after, rows }) as Uint8Array | undefined;
      // Shrink the page while it would be far over budget (a run of large records).
      while (rows > 1 && ((upper ? middle : last).bytes.get({ after, upper, ...fixed }) as number) > 2 * PAGE_BYTES) {
        rows = rows >> 1;
        upper = pageEnd.get({ after, rows }) as Uint8Array | undefined;
      }
      const sections = (upper ? middle : last).sections.get({
        after,
        upper,
        ...fixed,
        ...varints,
      }) as Uint8Array | null;
      if (sections) yield sections;
      if (!upper) return;
      after = upper;
      // Aim the next page at PAGE_BYTES from this page's average block size.
      const bytes = sections?.length ?? 0;
      rows =
        bytes === 0 ? MAX_PAGE_ROWS : Math.max(1, Math.min(MAX_PAGE_ROWS, Math.floor((PAGE_BYTES * rows) / bytes)));
    }
  } finally {
    snapshot.close();
  }
}
