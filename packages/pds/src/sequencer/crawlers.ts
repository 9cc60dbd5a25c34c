/**
 * Tells relays (PDS_CRAWLERS) to crawl this PDS: com.atproto.sync.requestCrawl {hostname} on
 * start-up and again after firehose activity, at most once every 20 minutes per crawler, so a
 * relay that dropped our connection (or never had it) comes back without being flooded.
 */
import type { Sequencer } from './sequencer.ts';

export const CRAWL_NOTIFY_INTERVAL_MS = 20 * 60 * 1000;

export interface CrawlerNotifierOptions {
  /** Our public hostname, as relays connect to it (no scheme). */
  hostname: string;
  /** Base URLs of relays, e.g. https://bsky.network. */
  crawlers: string[];
  fetch?: typeof fetch;
  minIntervalMs?: number;
  now?: () => number;
  onError?: (err: unknown, crawler: string) => void;
}

export class CrawlerNotifier {
  private readonly hostname: string;
  private readonly crawlers: string[];
  private readonly fetchImpl: typeof fetch;
  private readonly minIntervalMs: number;
  private readonly now: () => number;
  private readonly onError: (err: unknown, crawler: string) => void;
  private lastNotifiedMs: number | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(opts: CrawlerNotifierOptions) {
    this.hostname = opts.hostname;
    this.crawlers = opts.crawlers;
    this.fetchImpl = opts.fetch ?? globalThis.fetch;
    this.minIntervalMs = opts.minIntervalMs ?? CRAWL_NOTIFY_INTERVAL_MS;
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError ?? ((err, crawler) => console.warn(`requestCrawl to ${crawler} failed`, err));
  }

  /** Notifies every crawler now (start-up). Failures are reported, never thrown. */
  notify(): Promise<void> {
    if (this.crawlers.length === 0) return Promise.resolve();
    this.lastNotifiedMs = this.now();
    const done = Promise.all(this.crawlers.map((crawler) => this.requestCrawl(crawler))).then(() => {});
    this.inFlight = done;
    return done;
  }

  /** Notifies again if the last notification is older than the interval; otherwise does nothing. */
  onActivity(): Promise<void> | undefined {
    if (this.lastNotifiedMs !== undefined && this.now() - this.lastNotifiedMs < this.minIntervalMs) return undefined;
    return this.notify();
  }

  /** Calls onActivity() on each sequenced event; returns the unsubscribe function. */
  watch(sequencer: Sequencer): () => void {
    return sequencer.onEvent(() => {
      void this.onActivity();
    });
  }

  /** Settles when the latest round of requests has finished (for orderly shutdown and tests). */
  async idle(): Promise<void> {
    await this.inFlight;
  }

  private async requestCrawl(crawler: string): Promise<void> {
    try {
      const url = new URL('/xrpc/com.atproto.sync.requestCrawl', crawler);
      const res = await this.fetchImpl(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ hostname: this.hostname }),
        signal: AbortSignal.timeout(10_000),
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    } catch (err) {
      this.onError(err, crawler);
    }
  }
}
