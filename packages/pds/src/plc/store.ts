/**
 * SQLite storage of the embedded PLC directory: one append-only table of every operation ever
 * accepted, in acceptance order, with its nullified flag. WAL mode, so readers (resolution, export)
 * never wait for a writer.
 *
 * `created_at` is strictly increasing across the whole table (a later operation gets at least the
 * previous time + 1 ms), so /export can page by timestamp without skipping or repeating entries.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { PlcAuditEntry } from '@portage/atproto/plc/client';
import type { AnyPlcOperation } from '@portage/atproto/plc/operations';
import Database from 'better-sqlite3';

interface OperationRow {
  seq: number;
  did: string;
  cid: string;
  operation: string;
  nullified: number;
  created_at: string;
}

export interface StoredPlcEntry extends PlcAuditEntry {
  seq: number;
}

export const PLC_DATABASE_FILE = 'plc.sqlite';

export class PlcStore {
  readonly db: Database.Database;
  readonly #byDid: Database.Statement<[string], OperationRow>;
  readonly #lastSeq: Database.Statement<[string], { seq: number | null }>;
  readonly #lastCreated: Database.Statement<[], { created_at: string | null }>;
  readonly #insert: Database.Statement<[string, string, string, string]>;
  readonly #nullify: Database.Statement<[string, string]>;
  readonly #exportAfter: Database.Statement<[string, number], OperationRow>;

  /** Opens (creating if needed) the directory's database in `dataDirectory`, or at ':memory:'. */
  constructor(dataDirectory: string | ':memory:') {
    let path = ':memory:';
    if (dataDirectory !== ':memory:') {
      mkdirSync(dataDirectory, { recursive: true, mode: 0o700 });
      path = join(dataDirectory, PLC_DATABASE_FILE);
    }
    this.db = new Database(path);
    if (path !== ':memory:') chmodSync(path, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS plc_operation (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        did TEXT NOT NULL,
        cid TEXT NOT NULL,
        operation TEXT NOT NULL,
        nullified INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        UNIQUE (did, cid)
      );
      CREATE INDEX IF NOT EXISTS plc_operation_did ON plc_operation (did, seq);
      CREATE INDEX IF NOT EXISTS plc_operation_created ON plc_operation (created_at);
    `);
    this.#byDid = this.db.prepare('SELECT * FROM plc_operation WHERE did = ? ORDER BY seq');
    this.#lastSeq = this.db.prepare('SELECT max(seq) AS seq FROM plc_operation WHERE did = ?');
    this.#lastCreated = this.db.prepare('SELECT max(created_at) AS created_at FROM plc_operation');
    this.#insert = this.db.prepare('INSERT INTO plc_operation (did, cid, operation, created_at) VALUES (?, ?, ?, ?)');
    this.#nullify = this.db.prepare('UPDATE plc_operation SET nullified = 1 WHERE did = ? AND cid = ?');
    this.#exportAfter = this.db.prepare('SELECT * FROM plc_operation WHERE created_at > ? ORDER BY created_at LIMIT ?');
  }

  /** Every entry of the DID's log, oldest first (empty for an unknown DID). */
  entriesFor(did: string): StoredPlcEntry[] {
    return this.#byDid.all(did).map(toEntry);
  }

  /** seq of the DID's latest entry, 0 when it has none: detects a concurrent writer. */
  lastSeqFor(did: string): number {
    return this.#lastSeq.get(did)?.seq ?? 0;
  }

  /**
   * Appends an accepted operation and marks the ones it nullifies, atomically, provided the DID's
   * log has not changed since it was read (seq `expectedLastSeq`). Returns the stored entry, or
   * undefined when another writer got there first (the caller re-validates).
   */
  append(args: {
    did: string;
    cid: string;
    operation: AnyPlcOperation;
    nullifies: readonly string[];
    expectedLastSeq: number;
    now: Date;
  }): StoredPlcEntry | undefined {
    const run = this.db.transaction((): StoredPlcEntry | undefined => {
      if (this.lastSeqFor(args.did) !== args.expectedLastSeq) return undefined;
      const previous = this.#lastCreated.get()?.created_at;
      let time = args.now.getTime();
      if (previous) time = Math.max(time, Date.parse(previous) + 1);
      const createdAt = new Date(time).toISOString();
      for (const cid of args.nullifies) this.#nullify.run(args.did, cid);
      const info = this.#insert.run(args.did, args.cid, JSON.stringify(args.operation), createdAt);
      return {
        seq: Number(info.lastInsertRowid),
        did: args.did,
        cid: args.cid,
        operation: args.operation,
        nullified: false,
        createdAt,
      };
    });
    return run.immediate();
  }

  /** Up to `count` entries of all DIDs created strictly after `after` (ISO time), oldest first. */
  exportAfter(after: string, count: number): StoredPlcEntry[] {
    return this.#exportAfter.all(after, count).map(toEntry);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function toEntry(row: OperationRow): StoredPlcEntry {
  return {
    seq: row.seq,
    did: row.did,
    cid: row.cid,
    operation: JSON.parse(row.operation) as AnyPlcOperation,
    nullified: row.nullified === 1,
    createdAt: row.created_at,
  };
}
