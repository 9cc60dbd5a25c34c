/**
 * The outbox: a table inside the database whose change an event describes (an account's actor
 * store, or the account database), holding events that are committed but not yet sequenced.
 *
 * Writing the event here, in the same SQLite transaction as the change, is what makes "the
 * change happened" and "the event exists" one atomic fact; a transaction across ATTACHed
 * databases would not be atomic in WAL mode. The sequencer later moves rows into its log.
 * The table is created on first use, so a host database needs no migration for it.
 */
import type Database from 'better-sqlite3';

export interface OutboxRow {
  id: number;
  /** Random id that makes moving a row into the log idempotent across a crash. */
  eventId: string;
  type: string;
  did: string;
  /** DAG-CBOR of the message body without `seq`. */
  body: Uint8Array;
}

interface Statements {
  insert: Database.Statement;
  selectAll: Database.Statement;
  deleteUpTo: Database.Statement;
  count: Database.Statement;
}

const prepared = new WeakMap<Database.Database, Statements>();

function statements(db: Database.Database): Statements {
  let stmts = prepared.get(db);
  if (!stmts) {
    db.exec(`CREATE TABLE IF NOT EXISTS seq_outbox (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      event_id TEXT NOT NULL UNIQUE,
      type TEXT NOT NULL,
      did TEXT NOT NULL,
      body BLOB NOT NULL
    )`);
    stmts = {
      insert: db.prepare('INSERT INTO seq_outbox (event_id, type, did, body) VALUES (?, ?, ?, ?)'),
      selectAll: db.prepare('SELECT id, event_id AS eventId, type, did, body FROM seq_outbox ORDER BY id'),
      deleteUpTo: db.prepare('DELETE FROM seq_outbox WHERE id <= ?'),
      count: db.prepare('SELECT count(*) AS n FROM seq_outbox'),
    };
    prepared.set(db, stmts);
  }
  return stmts;
}

export function writeOutboxRow(db: Database.Database, row: Omit<OutboxRow, 'id'>): void {
  statements(db).insert.run(row.eventId, row.type, row.did, row.body);
}

export function readOutbox(db: Database.Database): OutboxRow[] {
  return (statements(db).selectAll.all() as Array<OutboxRow & { body: Buffer }>).map((r) => ({
    ...r,
    body: new Uint8Array(r.body.buffer, r.body.byteOffset, r.body.byteLength),
  }));
}

/** Rows are appended in id order and read whole, so "up to the last id read" is exactly what was moved. */
export function deleteOutboxUpTo(db: Database.Database, lastId: number): void {
  statements(db).deleteUpTo.run(lastId);
}

export function outboxSize(db: Database.Database): number {
  return (statements(db).count.get() as { n: number }).n;
}
