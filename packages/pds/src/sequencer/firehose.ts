/**
 * The firehose fan-out: serves the sequencer's log to WebSocket subscribers of
 * com.atproto.sync.subscribeRepos, with the event-stream cursor rules.
 *
 * - no cursor: live events only.
 * - cursor in the backfill window: events with seq > cursor read from the log page by page
 *   (paced by the socket: the next page waits until the previous one reached the kernel), then
 *   live. The switch to live happens in the same synchronous step as the read that came up
 *   short, and the sequencer announces an event in the same step that appends it, so no event
 *   falls between backfill and live; live delivery skips seq <= the last one sent, so none is
 *   sent twice.
 * - cursor > the last seq: error frame FutureCursor, then close.
 * - cursor older than the window (or than what is retained): #info OutdatedCursor, then from
 *   the window's first event.
 *
 * Live events are sent as the one frame the sequencer encoded, the same bytes for every
 * subscriber. A subscriber whose unsent bytes exceed `maxBufferedBytes` is told ConsumerTooSlow
 * and dropped; sending never waits on a subscriber, so one slow consumer cannot slow others.
 */
import type { WebSocket } from 'ws';
import { errorFrame, outdatedCursorFrame } from './frames.ts';
import type { SequencedEvent, Sequencer } from './sequencer.ts';

export interface FirehoseOptions {
  sequencer: Sequencer;
  /** PDS_REPO_BACKFILL_LIMIT_MS: how far back a cursor may reach. */
  backfillWindowMs: number;
  /** Unsent bytes a live subscriber may accumulate before it is dropped as too slow. */
  maxBufferedBytes?: number;
  /** Events read from the log per backfill step. */
  backfillPageSize?: number;
  /** Ping interval; a subscriber that has not answered the previous ping is disconnected. */
  heartbeatIntervalMs?: number;
  /** Time a closing subscriber gets to take its close frame before the socket is destroyed. */
  closeTimeoutMs?: number;
  now?: () => number;
}

interface Subscriber {
  ws: WebSocket;
  /** Highest seq sent (or skipped by the cursor rules) to this subscriber. */
  lastSeq: number;
  closed: boolean;
  alive: boolean;
}

export class Firehose {
  private readonly sequencer: Sequencer;
  private readonly backfillWindowMs: number;
  private readonly maxBufferedBytes: number;
  private readonly pageSize: number;
  private readonly closeTimeoutMs: number;
  private readonly now: () => number;
  private readonly subscribers = new Set<Subscriber>();
  private readonly live = new Set<Subscriber>();
  private readonly unsubscribe: () => void;
  private readonly heartbeat: NodeJS.Timeout;
  /** Subscribers dropped as too slow since start (for metrics and tests). */
  tooSlowCount = 0;

  constructor(opts: FirehoseOptions) {
    this.sequencer = opts.sequencer;
    this.backfillWindowMs = opts.backfillWindowMs;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 16 * 1024 * 1024;
    this.pageSize = opts.backfillPageSize ?? 500;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.unsubscribe = this.sequencer.onEvent((event) => this.broadcast(event));
    this.heartbeat = setInterval(() => this.ping(), opts.heartbeatIntervalMs ?? 30_000);
    this.heartbeat.unref();
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Starts serving an open WebSocket from `cursor` (undefined: live only). */
  serve(ws: WebSocket, cursor: number | undefined): void {
    const sub: Subscriber = { ws, lastSeq: 0, closed: false, alive: true };
    this.subscribers.add(sub);
    ws.on('close', () => this.forget(sub));
    ws.on('error', () => this.forget(sub));
    ws.on('pong', () => {
      sub.alive = true;
    });
    // Subscribers have nothing to say; anything they send is ignored.
    ws.on('message', () => {});

    const last = this.sequencer.lastSeq();
    if (cursor === undefined) {
      sub.lastSeq = last;
      this.live.add(sub);
      return;
    }
    if (cursor > last) {
      this.fail(sub, 'FutureCursor', `cursor ${cursor} is ahead of the latest event ${last}`);
      return;
    }
    const windowStart = this.now() - this.backfillWindowMs;
    const firstInWindow = this.sequencer.firstSeqAtOrAfter(windowStart) ?? last + 1;
    if (cursor + 1 < firstInWindow) {
      ws.send(outdatedCursorFrame());
      sub.lastSeq = firstInWindow - 1;
    } else {
      sub.lastSeq = cursor;
    }
    this.backfill(sub).catch(() => this.fail(sub, 'InternalServerError', 'could not read the event log'));
  }

  /** Sends an error frame and closes: for requests refused before any event (bad params). */
  reject(ws: WebSocket, error: string, message: string): void {
    const sub: Subscriber = { ws, lastSeq: 0, closed: false, alive: true };
    this.subscribers.add(sub);
    ws.on('close', () => this.forget(sub));
    ws.on('error', () => this.forget(sub));
    this.fail(sub, error, message);
  }

  private async backfill(sub: Subscriber): Promise<void> {
    while (!sub.closed) {
      const page = this.sequencer.readAfter(sub.lastSeq, this.pageSize);
      let written: Promise<void> | undefined;
      for (let i = 0; i < page.length; i++) {
        const event = page[i]!;
        if (i === page.length - 1 && page.length === this.pageSize) {
          written = new Promise((resolve) => sub.ws.send(event.frame, () => resolve()));
        } else {
          sub.ws.send(event.frame);
        }
        sub.lastSeq = event.seq;
      }
      if (page.length < this.pageSize) {
        // Caught up, in the same synchronous step as the read: nothing can be appended between.
        this.live.add(sub);
        return;
      }
      await written;
    }
  }

  private broadcast(event: SequencedEvent): void {
    for (const sub of this.live) {
      if (event.seq <= sub.lastSeq) continue;
      if (sub.ws.bufferedAmount > this.maxBufferedBytes) {
        this.tooSlowCount++;
        this.fail(sub, 'ConsumerTooSlow', 'Stream consumer too slow');
        continue;
      }
      sub.ws.send(event.frame);
      sub.lastSeq = event.seq;
    }
  }

  private fail(sub: Subscriber, error: string, message: string): void {
    if (sub.closed) return;
    sub.closed = true;
    this.live.delete(sub);
    try {
      sub.ws.send(errorFrame(error, message));
      sub.ws.close(1008, error);
    } catch {
      sub.ws.terminate();
    }
    setTimeout(() => sub.ws.terminate(), this.closeTimeoutMs).unref();
  }

  private forget(sub: Subscriber): void {
    sub.closed = true;
    this.live.delete(sub);
    this.subscribers.delete(sub);
  }

  private ping(): void {
    for (const sub of this.subscribers) {
      if (!sub.alive) {
        sub.ws.terminate();
        this.forget(sub);
        continue;
      }
      sub.alive = false;
      sub.ws.ping();
    }
  }

  /** Closes every subscription (server shutdown). */
  close(): void {
    this.unsubscribe();
    clearInterval(this.heartbeat);
    for (const sub of this.subscribers) {
      sub.closed = true;
      sub.ws.close(1001, 'server shutting down');
      setTimeout(() => sub.ws.terminate(), this.closeTimeoutMs).unref();
    }
    this.live.clear();
    this.subscribers.clear();
  }
}
