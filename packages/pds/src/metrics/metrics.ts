/**
 * The server's figures in Prometheus's text format (prom-client), for `/metrics`: requests by
 * method and status with latency, forwarded calls with theirs, firehose subscribers and the
 * sequencer's position, database and blob bytes, and accounts by status. Request figures are
 * counted as requests end; the rest is read when Prometheus scrapes, the disk sizes at most once
 * a minute, since walking every account's files is not free.
 */
import { stat } from 'node:fs/promises';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { folderBytes } from './folder-bytes.ts';

/** What the scrape-time figures are read from. */
export interface MetricSources {
  firehoseSubscribers(): number;
  lastSeq(): number;
  accountsByStatus(): Record<string, number>;
  /** Files whose sizes are the database bytes, by database name (SQLite's -wal files included). */
  databaseFiles(): Record<string, string>;
  /** The folder of the actor stores, whose total size is reported. */
  folders(): { actorStores: string };
  /** Bytes of permanent blobs, wherever the blob store keeps them. */
  blobBytes(): Promise<number>;
  /** Whether the rate limits are shared through Redis right now (undefined: no Redis configured). */
  sharedRateLimits?(): boolean | undefined;
}

/** Method labels: served and forwarded NSIDs up to this many, then `other`, so random paths cannot grow memory. */
const MAX_METHOD_LABELS = 500;
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const DISK_SCAN_INTERVAL_MS = 60_000;

export class Metrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'method' | 'status'>;
  readonly #latency: Histogram<'method'>;
  readonly #forwarded: Histogram<'method' | 'status'>;
  readonly #methodLabels = new Set<string>();
  #diskScan: { at: number; sizes: Promise<{ actorStores: number; blobs: number }> } | undefined;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'portage_' });
    this.#requests = new Counter({
      name: 'portage_requests_total',
      help: 'HTTP requests answered, by XRPC method (or route) and status',
      labelNames: ['method', 'status'],
      registers,
    });
    this.#latency = new Histogram({
      name: 'portage_request_duration_seconds',
      help: 'Time to answer a request, by XRPC method (or route)',
      labelNames: ['method'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#forwarded = new Histogram({
      name: 'portage_forwarded_request_duration_seconds',
      help: 'Time of calls forwarded to another service (AppView, atproto-proxy), by method and upstream status',
      labelNames: ['method', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'portage_firehose_subscribers',
      help: 'Open subscribeRepos connections',
      registers,
      collect() {
        this.set(sources.firehoseSubscribers());
      },
    });
    new Gauge({
      name: 'portage_sequencer_seq',
      help: 'The last sequence number the firehose assigned',
      registers,
      collect() {
        this.set(sources.lastSeq());
      },
    });
    new Gauge({
      name: 'portage_accounts',
      help: 'Hosted accounts by status',
      labelNames: ['status'],
      registers,
      collect() {
        this.reset();
        for (const [status, count] of Object.entries(sources.accountsByStatus())) this.set({ status }, count);
      },
    });
    new Gauge({
      name: 'portage_database_bytes',
      help: 'Bytes on disk of each database (the actor stores together)',
      labelNames: ['database'],
      registers,
      collect: async () => {
        const gauge = this.registry.getSingleMetric('portage_database_bytes') as Gauge<'database'>;
        for (const [name, path] of Object.entries(sources.databaseFiles())) {
          let bytes = 0;
          for (const file of [path, `${path}-wal`])
            bytes += await stat(file).then(
              (s) => s.size,
              () => 0,
            );
          gauge.set({ database: name }, bytes);
        }
        gauge.set({ database: 'actor stores' }, (await this.#diskSizes(sources)).actorStores);
      },
    });
    // Only with Redis configured (the source answers undefined without it).
    if (sources.sharedRateLimits?.() !== undefined) {
      new Gauge({
        name: 'portage_rate_limits_shared',
        help: '1 while rate limits are shared through Redis, 0 while Redis is unreachable and each process counts alone',
        registers,
        collect() {
          this.set(sources.sharedRateLimits?.() ? 1 : 0);
        },
      });
    }
    new Gauge({
      name: 'portage_blob_bytes',
      help: 'Bytes of permanent blobs in the blob store (disk or S3)',
      registers,
      collect: async () => {
        const gauge = this.registry.getSingleMetric('portage_blob_bytes') as Gauge;
        gauge.set((await this.#diskSizes(sources)).blobs);
      },
    });
  }

  #diskSizes(sources: MetricSources): Promise<{ actorStores: number; blobs: number }> {
    const now = Date.now();
    if (!this.#diskScan || now - this.#diskScan.at > DISK_SCAN_INTERVAL_MS) {
      const { actorStores } = sources.folders();
      this.#diskScan = {
        at: now,
        sizes: Promise.all([folderBytes(actorStores), sources.blobBytes()]).then(([a, b]) => ({
          actorStores: a,
          blobs: b,
        })),
      };
    }
    return this.#diskScan.sizes;
  }

  /** The label for a method: itself while few are known, `other` past that. */
  #label(method: string): string {
    if (this.#methodLabels.has(method)) return method;
    if (this.#methodLabels.size >= MAX_METHOD_LABELS) return 'other';
    this.#methodLabels.add(method);
    return method;
  }

  observeRequest(method: string, status: number, seconds: number): void {
    const label = this.#label(method);
    this.#requests.inc({ method: label, status: String(status) });
    this.#latency.observe({ method: label }, seconds);
  }

  observeForwarded(method: string, status: number, seconds: number): void {
    this.#forwarded.observe({ method: this.#label(method), status: String(status) }, seconds);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
