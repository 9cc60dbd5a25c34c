/**
 * One SQLite file per account. Keeping each repository in its own file makes an account's data
 * easy to move, back up and delete, keeps write locks per account, and lets a busy account grow
 * without slowing the others. Prepared statements are made once per open database.
 *
 * This file is the store's schema: its tables, versions and connection settings.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type SqliteDb = Database.Database;

/**
 * The account store's schema as numbered migrations: `PRAGMA user_version` records how many have
 * run, and opening a store runs the missing ones in one transaction (as the account database
 * does). This is the only place that creates or alters the store's tables; the sequencer adds its
 * outbox table (`seq_outbox`, see sequencer/outbox.ts) to any database it writes events through.
 *
 * Stores written before versions existed have user_version 0 and exactly the tables of
 * migration 1, which therefore says IF NOT EXISTS: on such a store it only records the version.
 * Later migrations are plain DDL and must never be edited once released.
 */
const MIGRATIONS: string[] = [
  // 1: blocks, records, blobs and the root of one account's repository.
  `
  CREATE TABLE IF NOT EXISTS repo_root (
    did TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    rev TEXT NOT NULL,
    indexed_at TEXT NOT NULL
  );
  -- Every block of the current repository (commit, MST nodes, records), tagged with the rev of
  -- the commit that wrote it so getRepo?since= can select what changed after a rev.
  CREATE TABLE IF NOT EXISTS repo_block (
    cid BLOB PRIMARY KEY,
    repo_rev TEXT NOT NULL,
    size INTEGER NOT NULL,
    content BLOB NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS repo_block_rev ON repo_block (repo_rev);
  CREATE TABLE IF NOT EXISTS record (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    repo_rev TEXT NOT NULL,
    indexed_at TEXT NOT NULL
  );
  CREATE UNIQUE INDEX IF NOT EXISTS record_collection_rkey ON record (collection, rkey);
  CREATE INDEX IF NOT EXISTS record_cid ON record (cid);
  CREATE INDEX IF NOT EXISTS record_rev ON record (repo_rev);
  -- temp_key is set while the blob is an upload no committed record references yet.
  CREATE TABLE IF NOT EXISTS blob (
    cid TEXT PRIMARY KEY,
    mime_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    temp_key TEXT,
    created_at TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS blob_temp ON blob (created_at) WHERE temp_key IS NOT NULL;
  CREATE TABLE IF NOT EXISTS record_blob (
    blob_cid TEXT NOT NULL,
    record_uri TEXT NOT NULL,
    PRIMARY KEY (blob_cid, record_uri)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS record_blob_uri ON record_blob (record_uri);
  `,
  // 2: moderation takedowns of single records and blobs (the reference's takedownRef); the
  // account's own takedown is in the account database.
  `
  ALTER TABLE record ADD COLUMN takedown_ref TEXT;
  ALTER TABLE blob ADD COLUMN takedown_ref TEXT;
  `,
];

/** The tables a repository import replaces whole (the blob table, uploads, stays). */
export const REPOSITORY_TABLES = ['repo_block', 'record', 'record_blob'] as const;

/** The schema version this code writes: opening a store upgrades it to this. */
export const ACTOR_DB_VERSION = MIGRATIONS.length;

/**
 * The shared root index (see root-index.ts), versioned the same way. Its migration 1 is likewise
 * what unversioned indexes already hold.
 */
const ROOT_INDEX_MIGRATIONS: string[] = [
  `CREATE TABLE IF NOT EXISTS repo_root (did TEXT PRIMARY KEY, cid TEXT NOT NULL, rev TEXT NOT NULL)`,
];

/**
 * Runs the migrations `db` has not had yet, in one transaction; refuses a newer schema. On any
 * failure the connection is closed (the caller never gets it).
 */
function migrate(db: SqliteDb, migrations: readonly string[], what: string): void {
  try {
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current === migrations.length) return;
    if (current > migrations.length) {
      throw new Error(`${what} schema version ${current} is newer than this Portage (${migrations.length})`);
    }
    db.transaction(() => {
      for (let v = current; v < migrations.length; v++) db.exec(migrations[v]!);
      db.pragma(`user_version = ${migrations.length}`);
    })();
  } catch (err) {
    db.close();
    throw err;
  }
}

export function openActorDb(path: string): SqliteDb {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  chmodSync(path, 0o600);
  db.pragma('journal_mode = WAL');
  // NORMAL: a commit is in the WAL file before it is acknowledged, so it survives the process
  // being killed at any point (the kill -9 test shows it); the WAL is fsynced at checkpoints, so a
  // power cut may lose the last moments of writes but never corrupts a repository. FULL would
  // fsync every commit on the event loop, capping the whole server near one commit per fsync.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = OFF');
  db.pragma('busy_timeout = 5000');
  db.pragma('cache_size = -4000');
  // Reads (exports walk every block by CID) go through the OS page cache without a syscall
  // each; address space, not memory, is what this reserves.
  db.pragma('mmap_size = 1073741824');
  migrate(db, MIGRATIONS, `actor store ${path}`);
  return db;
}

/**
 * Leaves WAL mode for a rollback journal, when `db` is the only connection to its file (SQLite
 * answers SQLITE_BUSY at once otherwise, without waiting for the busy timeout). True when it
 * switched: the caller switches back with `journal_mode = WAL`.
 */
export function useRollbackJournal(db: SqliteDb): boolean {
  try {
    return db.pragma('journal_mode = DELETE', { simple: true }) === 'delete';
  } catch {
    return false;
  }
}

/** The shared index of every repository's current root (see root-index.ts). */
export function openRootIndex(path: string): SqliteDb {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  migrate(db, ROOT_INDEX_MIGRATIONS, `root index ${path}`);
  return db;
}
