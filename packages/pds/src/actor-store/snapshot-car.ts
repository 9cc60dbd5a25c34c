/**
 * getRepo's CAR, read from a snapshot of an account's database. A read-only connection holds
 * one read transaction, so every block comes from the same state of the repository however many
 * commits land while the response streams (WAL keeps that snapshot readable). Blocks are
 * scanned in storage order and framed straight from the raw rows (no CID objects per block):
 * CAR readers accept any order, and this is also the order the reference PDS serves.
 */
import { encodeCarHeader } from '@portage/atproto/car';
import type { Cid } from '@portage/atproto/cid';
import { varintLength, writeVarint } from '@portage/atproto/car/varint';
import Database from 'better-sqlite3';
import type { SqliteDb } from './db.ts';

const CHUNK_SIZE = 256 * 1024;

export function openSnapshot(path: string): SqliteDb {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma('mmap_size = 1073741824');
  db.exec('BEGIN');
  return db;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The CAR rooted at `commit`: the commit block first, then the other blocks of the snapshot
 * (with `since`, only those written after that rev), in chunks of about 256 KB. Closes the
 * snapshot when done or abandoned.
 */
export async function* snapshotCar(
  snapshot: SqliteDb,
  commit: Cid,
  since: string | undefined,
): AsyncGenerator<Uint8Array> {
  try {
    let chunk = new Uint8Array(CHUNK_SIZE);
    let used = 0;
    const header = encodeCarHeader([commit]);
    chunk.set(header, 0);
    used = header.length;
    const commitRow = snapshot
      .prepare('SELECT cid, content FROM repo_block WHERE cid = ?')
      .raw(true)
      .get(commit.bytes) as [Uint8Array, Uint8Array] | undefined;
    const rest =
      since === undefined
        ? snapshot.prepare('SELECT cid, content FROM repo_block').raw(true).iterate()
        : snapshot.prepare('SELECT cid, content FROM repo_block WHERE repo_rev > ?').raw(true).iterate(since);
    const rows = (function* () {
      if (commitRow) yield commitRow;
      for (const row of rest as IterableIterator<[Uint8Array, Uint8Array]>) {
        if (!sameBytes(row[0], commit.bytes)) yield row;
      }
    })();
    for (const [cid, content] of rows) {
      const length = cid.length + content.length;
      const frame = varintLength(length) + length;
      if (used + frame > chunk.length) {
        if (used > 0) yield chunk.subarray(0, used);
        chunk = new Uint8Array(Math.max(CHUNK_SIZE, frame));
        used = 0;
      }
      used = writeVarint(length, chunk, used);
      chunk.set(cid, used);
      used += cid.length;
      chunk.set(content, used);
      used += content.length;
    }
    if (used > 0) yield chunk.subarray(0, used);
  } finally {
    snapshot.close();
  }
}
