/**
 * The sequencer, the firehose fan-out and the crawler notifier, built and started together so
 * the app context needs one line to have them and one to close them. Start-up order matters:
 * outbox recovery runs before any subscriber can connect, so a cursor never skips a recovered
 * event.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { CrawlerNotifier } from './crawlers.ts';
import type { CommitEvent } from '../actor-store/types.ts';
import { Firehose } from './firehose.ts';
import { type OutboxHost, Sequencer } from './sequencer.ts';

/** Outbox host key of the account database (DIDs, the actor stores' keys, never look like this). */
export const ACCOUNT_OUTBOX_KEY = 'account-db';

/** The reference's default for PDS_REPO_BACKFILL_LIMIT_MS: one day. */
export const DEFAULT_BACKFILL_WINDOW_MS = 24 * 60 * 60 * 1000;

export interface FirehoseServiceOptions {
  /** PDS_DATA_DIRECTORY: the log is `<dir>/sequencer.sqlite`. */
  dataDirectory: string;
  /** PDS_REPO_BACKFILL_LIMIT_MS. */
  backfillWindowMs?: number;
  /** PDS_HOSTNAME, sent to crawlers. */
  hostname: string;
  /** PDS_CRAWLERS. */
  crawlers: string[];
  /** Opens an account's actor-store database by DID, for outbox recovery at start-up. */
  openActorDb?: (did: string) => Database.Database | undefined;
  /**
   * The account database, when account code sequences #identity/#account events through its
   * outbox (host key ACCOUNT_OUTBOX_KEY) in the same transaction as the change.
   */
  accountDb?: Database.Database;
  fetch?: typeof fetch;
  logger?: { error(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** Firehose tuning (tests). */
  maxBufferedBytes?: number;
}

const PRUNE_INTERVAL_MS = 60 * 60 * 1000;
const SWEEP_INTERVAL_MS = 60 * 1000;

export class FirehoseService {
  readonly sequencer: Sequencer;
  readonly firehose: Firehose;
  readonly crawlers: CrawlerNotifier;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unwatch: () => void;

  constructor(opts: FirehoseServiceOptions) {
    const backfillWindowMs = opts.backfillWindowMs ?? DEFAULT_BACKFILL_WINDOW_MS;
    const logger = opts.logger;
    mkdirSync(opts.dataDirectory, { recursive: true });
    this.sequencer = new Sequencer({
      dbPath: join(opts.dataDirectory, 'sequencer.sqlite'),
      openOutboxHost: (key) => (key === ACCOUNT_OUTBOX_KEY ? opts.accountDb : opts.openActorDb?.(key)),
      onError: (err, context) => logger?.error({ err }, `sequencer: ${context}`),
    });
    const recovered = this.sequencer.recover();
    if (recovered > 0) logger?.warn({ recovered }, 'sequencer: recovered events left in outboxes by a crash');
    this.firehose = new Firehose({
      sequencer: this.sequencer,
      backfillWindowMs,
      maxBufferedBytes: opts.maxBufferedBytes,
    });
    this.crawlers = new CrawlerNotifier({
      hostname: opts.hostname,
      crawlers: opts.crawlers,
      fetch: opts.fetch,
      onError: (err, crawler) => logger?.warn({ err: String(err), crawler }, 'requestCrawl failed'),
    });
    this.unwatch = this.crawlers.watch(this.sequencer);
    void this.crawlers.notify();
    const prune = setInterval(() => this.sequencer.prune(Date.now() - backfillWindowMs), PRUNE_INTERVAL_MS);
    const sweep = setInterval(() => this.sequencer.sweepMarkers(), SWEEP_INTERVAL_MS);
    prune.unref();
    sweep.unref();
    this.timers.push(prune, sweep);
  }

  /**
   * The outbox host for events written in an account-database transaction, e.g.
   * `db.transaction(() => { update handle; sequencer.sequenceIdentity(service.accountHost(db), {...}) })()`.
   */
  accountHost(db: Database.Database): OutboxHost {
    return { key: ACCOUNT_OUTBOX_KEY, db };
  }

  /**
   * The actor store's commit listener: runs inside the commit's write transaction. With the
   * account database (`db`) the event goes through that database's outbox and commits with
   * the write; without it, it is appended to the log directly.
   */
  readonly onCommit = (event: CommitEvent, db?: Database.Database): void => {
    this.sequencer.sequenceCommit(db ? { key: event.did, db } : null, event);
  };

  close(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.unwatch();
    this.firehose.close();
    this.sequencer.close();
  }
}
