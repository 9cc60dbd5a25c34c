/**
 * ServerBackups: takes a backup of the running server (./snapshot.ts) into
 * PORTAGE_BACKUP_DIRECTORY every PORTAGE_BACKUP_INTERVAL and keeps the newest
 * PORTAGE_BACKUP_KEEP. The schedule counts from the newest backup on disk, so restarts neither
 * skip one nor take one too many: a server whose last backup is older than the interval takes
 * one soon after it starts. One backup at a time; stop() abandons a running one (its temporary
 * folder is removed) before the databases close.
 */
import { Gauge, type Registry } from 'prom-client';
import type { AppContext } from '../context.ts';
import type { Logger } from '../logger.ts';
import { s3BlobStore } from '../blobstore/create.ts';
import { bucketShipping } from './offsite.ts';
import { type BackupManifest, type BackupSources, listBackups, takeBackup } from './snapshot.ts';

/** How long after start-up a due backup begins (the server settles first). */
const START_DELAY_MS = 5_000;

class BackupStopped extends Error {}

export interface TakenBackup {
  folder: string;
  manifest: BackupManifest;
}

export interface ServerBackupsOptions {
  directory: string;
  intervalMs: number;
  keep: number;
  sources: BackupSources;
  logger: Logger;
  /** Registry the backup gauges are added to (the server's /metrics). */
  registry?: Registry;
  /** Delay before a backup that is already due (default 5 s). */
  startDelayMs?: number;
  /** Where each finished backup is also copied (PORTAGE_BACKUP_TO_BUCKET). */
  offsite?: BackupShipping;
}

/** Copies a finished backup's folder elsewhere (the blob bucket). */
export interface BackupShipping {
  /** A name for the log. */
  readonly name: string;
  ship(folder: string): Promise<number>;
}

export class ServerBackups {
  readonly directory: string;
  readonly #opts: ServerBackupsOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<TakenBackup | undefined> | undefined;
  #stopping = false;
  #lastSuccess: { at: number; durationMs: number; manifest: BackupManifest } | undefined;
  #failures = 0;

  constructor(opts: ServerBackupsOptions) {
    this.directory = opts.directory;
    this.#opts = opts;
    if (opts.registry) this.#registerGauges(opts.registry);
  }

  /** Builds the service over a running server's databases. */
  static forContext(ctx: AppContext, opts: { startDelayMs?: number } = {}): ServerBackups | undefined {
    const { config } = ctx;
    if (!config.backupDirectory) return undefined;
    const live = new Map([
      [config.accountDbPath, ctx.accountManager.db],
      [ctx.sequencer.db.name, ctx.sequencer.db],
    ]);
    return new ServerBackups({
      directory: config.backupDirectory,
      intervalMs: config.backupIntervalMs,
      keep: config.backupKeep,
      logger: ctx.logger,
      registry: ctx.metrics.registry,
      startDelayMs: opts.startDelayMs,
      offsite: config.backupToBucket ? bucketShipping(s3BlobStore(config)!) : undefined,
      sources: {
        dataDirectory: config.dataDirectory,
        accountDbPath: config.accountDbPath,
        sequencerDbPath: ctx.sequencer.db.name,
        actorStoreDirectory: config.actorStoreDirectory,
        blobDirectory: config.blobstoreDiskLocation,
        secretsPath: config.secretsPath,
        version: config.version,
        liveConnections: live,
      },
    });
  }

  /** Schedules the next backup: when the newest on disk is an interval old, or at once if none. */
  async start(): Promise<void> {
    const newest = (await listBackups(this.directory)).at(-1);
    const newestAt = newest ? Date.parse(newest.replace(/T(\d\d)-(\d\d)-(\d\d)-(\d{3})Z$/, 'T$1:$2:$3.$4Z')) : 0;
    const due = Number.isNaN(newestAt) ? 0 : newestAt + this.#opts.intervalMs - Date.now();
    this.#schedule(Math.max(due, this.#opts.startDelayMs ?? START_DELAY_MS));
    this.#opts.logger.info(
      { backupDirectory: this.directory, intervalMs: this.#opts.intervalMs, keep: this.#opts.keep },
      'server backups on',
    );
  }

  #schedule(delayMs: number): void {
    if (this.#stopping) return;
    clearTimeout(this.#timer);
    // setTimeout's limit is about 24.8 days; a longer wait is taken in pieces.
    const wait = Math.min(delayMs, 2 ** 31 - 1);
    this.#timer = setTimeout(() => {
      if (wait < delayMs) return this.#schedule(delayMs - wait);
      // A failed backup is tried again an interval later (a completed one reschedules itself).
      this.runNow().catch(() => this.#schedule(this.#opts.intervalMs));
    }, wait);
    this.#timer.unref();
  }

  /**
   * Takes a backup now (after the running one, if any); resolves to its folder and manifest, or undefined
   * when the server stopped first. Rejects when the backup failed (also logged).
   */
  async runNow(): Promise<TakenBackup | undefined> {
    while (this.#running) await this.#running.catch(() => {});
    if (this.#stopping) return undefined;
    const run = this.#take();
    this.#running = run;
    try {
      return await run;
    } finally {
      if (this.#running === run) this.#running = undefined;
    }
  }

  async #take(): Promise<TakenBackup | undefined> {
    const started = Date.now();
    const log = this.#opts.logger;
    log.info({ backupDirectory: this.directory }, 'backup started');
    try {
      const { folder, manifest } = await takeBackup(this.#opts.sources, this.directory, this.#opts.keep, {
        checkStop: () => {
          if (this.#stopping) throw new BackupStopped('the server is stopping');
        },
      });
      if (this.#opts.offsite) {
        const files = await this.#opts.offsite.ship(folder);
        log.info({ folder, files, to: this.#opts.offsite.name }, 'backup copied offsite');
      }
      const durationMs = Date.now() - started;
      this.#lastSuccess = { at: Date.now(), durationMs, manifest };
      this.#schedule(this.#opts.intervalMs);
      log.info(
        {
          folder,
          durationMs,
          lastSeq: manifest.lastSeq,
          accounts: manifest.accounts,
          blobsCopied: manifest.blobsCopied,
        },
        'backup complete',
      );
      return { folder, manifest };
    } catch (err) {
      if (err instanceof BackupStopped) {
        log.info('backup abandoned: the server is stopping');
        return undefined;
      }
      this.#failures++;
      log.error({ err, backupDirectory: this.directory }, 'backup failed');
      throw err;
    }
  }

  /** Ends the schedule and abandons a running backup; resolves once nothing reads the databases. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#timer);
    await this.#running?.catch(() => {});
  }

  #registerGauges(registry: Registry): void {
    const registers = [registry];
    const lastSuccess: Gauge = new Gauge({
      name: 'portage_backup_last_success_timestamp_seconds',
      help: 'When the last server backup completed (0: none since start-up)',
      registers,
      collect: () => lastSuccess.set(this.#lastSuccess ? this.#lastSuccess.at / 1000 : 0),
    });
    const lastDuration: Gauge = new Gauge({
      name: 'portage_backup_last_duration_seconds',
      help: 'How long the last completed server backup took',
      registers,
      collect: () => lastDuration.set(this.#lastSuccess ? this.#lastSuccess.durationMs / 1000 : 0),
    });
    const failures: Gauge = new Gauge({
      name: 'portage_backup_failures',
      help: 'Server backups that failed since start-up',
      registers,
      collect: () => failures.set(this.#failures),
    });
  }
}
