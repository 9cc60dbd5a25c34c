/**
 * The sequencer: the PDS's durable, totally ordered log of repository events, the source of the
 * firehose (com.atproto.sync.subscribeRepos) and of its cursors.
 *
 * Atomicity with the change an event describes (why there is an outbox). The log lives in its
 * own SQLite database (sequencer.sqlite, WAL, synchronous=FULL); repo writes commit in the
 * account's actor-store database. SQLite in WAL mode does not make a transaction across
 * ATTACHed databases atomic, so instead:
 *   1. `sequenceCommit(host, ...)` etc. are called INSIDE the host database's (synchronous)
 *      write transaction. They write the encoded event into that database's `seq_outbox`
 *      table, so the change and its event commit or roll back together.
 *   2. Before that, the host's key is recorded in this database's `outbox_host` table (its own
 *      small commit). A marker without outbox rows (the host rolled back) is harmless; a
 *      committed outbox row always has a marker, which is what start-up recovery relies on.
 *   3. After the host transaction commits (a microtask scheduled by step 1, or an explicit
 *      `flush(host)`), the outbox rows are moved into the log in one transaction here, each
 *      getting the next seq, and then deleted from the outbox. Each row carries a random
 *      event id that is UNIQUE in the log, so a crash between the log commit and the outbox
 *      delete cannot sequence an event twice.
 *   4. `recover()` at start-up drains every marked host (opened through `openOutboxHost`).
 * Events with no host database (`host` null) go straight into the log.
 *
 * Sequence numbers: assigned here, in the log's write transaction, from max(seq ever used)+1.
 * The table is AUTOINCREMENT, so sqlite_sequence keeps the highest seq even after pruning, and
 * synchronous=FULL means a seq that was delivered to a subscriber survives a power cut: a seq
 * is never reused. Each log row stores the complete encoded frame, so backfill reads bytes and
 * live fan-out encodes each event exactly once for all subscribers.
 *
 * Ordering guarantee the firehose relies on: appending to the log and notifying listeners
 * happen in one synchronous step, so at every await point the set of events in the log equals
 * the set of events already announced.
 */
import { randomUUID } from 'node:crypto';
import { decode, encode } from '@atcute/cbor';
import Database from 'better-sqlite3';
import {
  type AccountEventData,
  accountEventBody,
  type CommitEventData,
  commitEventBody,
  type EventBody,
  type EventType,
  type IdentityEventData,
  identityEventBody,
  SequencerError,
  type SyncEventData,
  syncEventBody,
} from './events.ts';
import { messageFrame } from './frames.ts';
import { deleteOutboxUpTo, outboxSize, readOutbox, writeOutboxRow } from './outbox.ts';

/** A database that can hold an outbox, named by a key `openOutboxHost` understands (e.g. the DID). */
export interface OutboxHost {
  key: string;
  db: Database.Database;
}

export interface SequencedEvent {
  seq: number;
  did: string;
  type: EventType;
  /** When the event entered the log (ms since epoch); the backfill window is measured on it. */
  createdMs: number;
  /** The complete event-stream frame (header + body, `seq` included). */
  frame: Uint8Array;
}

export type SequencerListener = (event: SequencedEvent) => void;

export interface SequencerOptions {
  /** Path of the sequencer database file. */
  dbPath: string;
  /** Opens the database of a host that had unsequenced outbox rows when the server stopped. */
  openOutboxHost?: (key: string) => Database.Database | undefined;
  /** Reports failures of background flushes (the events stay in the outbox until the next flush). */
  onError?: (err: unknown, context: string) => void;
  now?: () => number;
  /** Recent events kept in memory so reconnecting subscribers share one read (default 64 MiB). */
  recentBytes?: number;
}

interface LogRow {
  eventId: string;
  type: EventType;
  did: string;
  body: Record<string, unknown>;
}

export class Sequencer {
  readonly db: Database.Database;
  private nextSeq: number;
  private readonly listeners = new Set<SequencerListener>();
  /** Hosts whose marker row is known to exist, so marking costs one write per host, not per event. */
  private readonly marked = new Map<string, Database.Database>();
  private readonly flushScheduled = new Set<string>();
  private readonly openOutboxHost: SequencerOptions['openOutboxHost'];
  private readonly onError: (err: unknown, context: string) => void;
  private readonly now: () => number;
  private readonly stmts: {
    insert: Database.Statement;
    readAfter: Database.Statement;
    firstAtOrAfter: Database.Statement;
    prune: Database.Statement;
    mark: Database.Statement;
    unmark: Database.Statement;
    markedKeys: Database.Statement;
  };
  private closed = false;
  /**
   * The newest events, contiguous up to lastSeq(): a subscriber backfilling from a recent
   * cursor (the common reconnect) is served from here, so many of them share one read.
   */
  private readonly recent: SequencedEvent[] = [];
  private recentHead = 0;
  private recentSize = 0;
  private readonly recentLimit: number;

  constructor(opts: SequencerOptions) {
    this.openOutboxHost = opts.openOutboxHost;
    this.onError = opts.onError ?? ((err, context) => console.error(`sequencer: ${context}`, err));
    this.now = opts.now ?? Date.now;
    this.recentLimit = opts.recentBytes ?? 64 * 1024 * 1024;
    this.db = new Database(opts.dbPath);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS repo_seq (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        did TEXT NOT NULL,
        type TEXT NOT NULL,
        frame BLOB NOT NULL,
        created_ms INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS repo_seq_created_ms ON repo_seq (created_ms);
      CREATE TABLE IF NOT EXISTS outbox_host (key TEXT PRIMARY KEY);
    `);
    const highest = this.db
      .prepare(
        `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'repo_seq'), 0),
                    coalesce((SELECT max(seq) FROM repo_seq), 0)) AS seq`,
      )
      .get() as { seq: number };
    this.nextSeq = highest.seq + 1;
    this.stmts = {
      insert: this.db.prepare(
        'INSERT OR IGNORE INTO repo_seq (seq, event_id, did, type, frame, created_ms) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      readAfter: this.db.prepare(
        'SELECT seq, did, type, frame, created_ms AS createdMs FROM repo_seq WHERE seq > ? ORDER BY seq LIMIT ?',
      ),
      firstAtOrAfter: this.db.prepare('SELECT seq FROM repo_seq WHERE created_ms >= ? ORDER BY seq LIMIT 1'),
      prune: this.db.prepare('DELETE FROM repo_seq WHERE created_ms < ?'),
      mark: this.db.prepare('INSERT OR IGNORE INTO outbox_host (key) VALUES (?)'),
      unmark: this.db.prepare('DELETE FROM outbox_host WHERE key = ?'),
      markedKeys: this.db.prepare('SELECT key FROM outbox_host'),
    };
  }

  // --- producing events -------------------------------------------------------------------

  /** A repo commit (#commit). Call inside the actor store's write transaction. */
  sequenceCommit(host: OutboxHost | null, data: CommitEventData): void {
    this.enqueue(host, commitEventBody(data, this.isoNow()));
  }

  /** The repo's current commit, for consumers to resync from (#sync): account creation, import, activation. */
  sequenceSync(host: OutboxHost | null, data: SyncEventData): void {
    this.enqueue(host, syncEventBody(data, this.isoNow()));
  }

  /** Handle or DID document change (#identity). */
  sequenceIdentity(host: OutboxHost | null, data: IdentityEventData): void {
    this.enqueue(host, identityEventBody(data, this.isoNow()));
  }

  /** Hosting status change (#account): activation, deactivation, deletion, takedown. */
  sequenceAccount(host: OutboxHost | null, data: AccountEventData): void {
    this.enqueue(host, accountEventBody(data, this.isoNow()));
  }

  private enqueue(host: OutboxHost | null, event: EventBody): void {
    this.assertOpen();
    const eventId = randomUUID();
    if (host === null) {
      this.append([{ eventId, ...event }]);
      return;
    }
    if (this.marked.get(host.key) !== host.db) {
      this.stmts.mark.run(host.key);
      this.marked.set(host.key, host.db);
    }
    writeOutboxRow(host.db, { eventId, type: event.type, did: event.did, body: encode(event.body) });
    this.scheduleFlush(host);
  }

  /**
   * A microtask runs once the synchronous transaction that wrote the outbox row has returned,
   * i.e. after it committed or rolled back. A host still inside a transaction (one spanning
   * awaits) is retried later: its rows are not committed yet.
   */
  private scheduleFlush(host: OutboxHost): void {
    if (this.flushScheduled.has(host.key)) return;
    this.flushScheduled.add(host.key);
    const attempt = (): void => {
      if (this.closed) return;
      if (host.db.open && host.db.inTransaction) {
        setImmediate(attempt);
        return;
      }
      this.flushScheduled.delete(host.key);
      try {
        this.flush(host);
      } catch (err) {
        this.onError(err, `flushing the outbox of ${host.key}`);
      }
    };
    queueMicrotask(attempt);
  }

  /** Moves a host's committed outbox rows into the log and announces them. Returns what was added. */
  flush(host: OutboxHost): SequencedEvent[] {
    this.assertOpen();
    if (host.db.inTransaction) {
      throw new SequencerError('OutboxInTransaction', `the outbox of ${host.key} is inside an open transaction`);
    }
    const rows = readOutbox(host.db);
    if (rows.length === 0) return [];
    const added = this.append(
      rows.map((row) => ({
        eventId: row.eventId,
        type: row.type as EventType,
        did: row.did,
        body: decode(row.body) as Record<string, unknown>,
      })),
    );
    deleteOutboxUpTo(host.db, rows[rows.length - 1]!.id);
    return added;
  }

  private append(rows: LogRow[]): SequencedEvent[] {
    const createdMs = this.now();
    const added: SequencedEvent[] = [];
    let seq = this.nextSeq;
    this.db.transaction(() => {
      for (const row of rows) {
        const frame = messageFrame(row.type, { ...row.body, seq });
        const result = this.stmts.insert.run(seq, row.eventId, row.did, row.type, frame, createdMs);
        // Ignored: the event was already moved before a crash (same event id).
        if (result.changes === 1) {
          added.push({ seq, did: row.did, type: row.type, createdMs, frame });
          seq++;
        }
      }
    })();
    this.nextSeq = seq;
    for (const event of added) this.remember(event);
    for (const event of added) {
      for (const listener of this.listeners) {
        try {
          listener(event);
        } catch (err) {
          this.onError(err, `delivering event ${event.seq}`);
        }
      }
    }
    return added;
  }

  // --- start-up and housekeeping -----------------------------------------------------------

  /** Sequences every event left in an outbox by a crash. Call once at start-up, before serving. */
  recover(): number {
    this.assertOpen();
    let recovered = 0;
    for (const { key } of this.stmts.markedKeys.all() as Array<{ key: string }>) {
      const db = this.openOutboxHost?.(key);
      if (db) {
        recovered += this.flush({ key, db }).length;
        if (outboxSize(db) > 0) continue;
      }
      this.stmts.unmark.run(key);
      this.marked.delete(key);
    }
    return recovered;
  }

  /**
   * Drops the markers of hosts whose outbox is empty and not inside a transaction. Markers are
   * kept between writes (cheap) and swept now and then so that recovery stays short.
   */
  sweepMarkers(): number {
    let swept = 0;
    for (const [key, db] of this.marked) {
      try {
        if (!db.open) {
          this.marked.delete(key); // leave the marker: recovery will look at this host
          continue;
        }
        if (db.inTransaction || this.flushScheduled.has(key) || outboxSize(db) > 0) continue;
        this.stmts.unmark.run(key);
        this.marked.delete(key);
        swept++;
      } catch (err) {
        this.marked.delete(key);
        this.onError(err, `sweeping the outbox marker of ${key}`);
      }
    }
    return swept;
  }

  /** Deletes events that entered the log before `beforeMs`; seqs are still never reused. */
  prune(beforeMs: number): number {
    return this.stmts.prune.run(beforeMs).changes;
  }

  /**
   * Deletes a deleted account's events up to `throughSeq`, as the reference does: a consumer
   * backfilling later finds no trace of the repository, only the #account event that says it
   * was deleted (sequenced after `throughSeq`).
   */
  deleteAccountEvents(did: string, throughSeq: number): number {
    return this.db.prepare('DELETE FROM repo_seq WHERE did = ? AND seq <= ?').run(did, throughSeq).changes;
  }

  close(): void {
    if (this.closed) return;
    this.sweepMarkers();
    this.closed = true;
    this.listeners.clear();
    this.db.close();
  }

  // --- reading -----------------------------------------------------------------------------

  onEvent(listener: SequencerListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The highest seq assigned so far (0 before the first event). */
  lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Events with seq > cursor, in order, at most `limit`. */
  readAfter(cursor: number, limit: number): SequencedEvent[] {
    const first = this.recent[this.recentHead];
    if (first && cursor >= first.seq - 1) {
      const start = this.recentHead + (cursor + 1 - first.seq);
      return this.recent.slice(start, start + limit);
    }
    return this.stmts.readAfter.all(cursor, limit) as SequencedEvent[];
  }

  private remember(event: SequencedEvent): void {
    this.recent.push(event);
    this.recentSize += event.frame.length;
    while (this.recentSize > this.recentLimit && this.recentHead < this.recent.length - 1) {
      this.recentSize -= this.recent[this.recentHead]!.frame.length;
      this.recent[this.recentHead] = undefined as unknown as SequencedEvent;
      this.recentHead++;
    }
    // Compact now and then instead of shifting the array on every event.
    if (this.recentHead > 1024 && this.recentHead * 2 > this.recent.length) {
      this.recent.splice(0, this.recentHead);
      this.recentHead = 0;
    }
  }

  /** The first retained seq that entered the log at or after `ms`, if any. */
  firstSeqAtOrAfter(ms: number): number | undefined {
    const row = this.stmts.firstAtOrAfter.get(ms) as { seq: number } | undefined;
    return row?.seq;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private isoNow(): string {
    return new Date(this.now()).toISOString();
  }

  private assertOpen(): void {
    if (this.closed) throw new SequencerError('SequencerClosed', 'the sequencer is closed');
  }
}
