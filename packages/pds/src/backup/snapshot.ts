/**
 * One server backup: an online copy of every SQLite database of a data directory into a new
 * timestamped folder (written under a temporary name, renamed when complete, with a manifest),
 * plus the blobs copied into a folder every backup shares (only the ones not there yet: a blob
 * file is named by its CID, so a present file is the same file).
 *
 * Databases are copied with SQLite's online backup API in steps of a few pages, yielding to the
 * event loop between steps, one database at a time, so writers go on; the event log goes last
 * (see takeBackup). Each copy is consistent:
 * a write is either in it or after it. A connection the server writes through is used as the
 * source where we have it (its own writes then reach the copy without restarting it); the other
 * databases are read through a connection of our own, where a write from elsewhere restarts the
 * copy, so after a few restarts the rest is taken in one step (one short read transaction,
 * which in WAL mode does not hold writers up).
 *
 * Layout of a backup root:
 *
 *   blobs/<account>/<cid>                    shared by every backup (pruned with the backups)
 *   2026-12-07T01-00-00-000Z/manifest.json   time, version, last seq, files with sizes and hashes
 *   2026-12-07T01-00-00-000Z/account.sqlite, sequencer.sqlite, actors/..., plc/plc.sqlite,
 *                            secrets.json, pds.env, oauth-keys.json (0600)
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import Database from 'better-sqlite3';

export const MANIFEST_FILE = 'manifest.json';
export const BLOBS_FOLDER = 'blobs';
/** Where each file goes inside a backup folder (and, restored, inside a data directory). */
export const LAYOUT = {
  account: 'account.sqlite',
  sequencer: 'sequencer.sqlite',
  actors: 'actors',
  plc: join('plc', 'plc.sqlite'),
  secrets: 'secrets.json',
  env: 'pds.env',
  /** The OAuth signing key and nonce secret (oauth/keys.ts). */
  oauthKeys: 'oauth-keys.json',
  blobs: 'blocks',
} as const;
export const ROOT_INDEX_FILE = 'repo-roots.sqlite';
const ACTOR_DB_FILE = 'store.sqlite';
const SIGNING_KEY_FILE = 'signing-key.json';
const FOLDER_RE = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;
const TEMP_PREFIX = '.incomplete-';
const PAGES_PER_STEP = 64;
/** Restarts (writes from another connection) after which the rest of a copy is taken in one step. */
const MAX_RESTARTS = 3;

/** Where a data directory's files are (the configured locations). */
export interface BackupSources {
  dataDirectory: string;
  accountDbPath: string;
  sequencerDbPath: string;
  actorStoreDirectory: string;
  blobDirectory: string;
  secretsPath: string;
  /** Portage's version, for the manifest. */
  version: string;
  /** Connections the server writes through, by database path, used as the copy's source. */
  liveConnections?: Map<string, Database.Database>;
}

export interface ManifestFile {
  path: string;
  size: number;
  sha256: string;
}

export interface BackupManifest {
  format: 1;
  createdAt: string;
  finishedAt: string;
  portageVersion: string;
  /** The sequencer's last seq in the copy. */
  lastSeq: number;
  accounts: number;
  /** Blobs this backup added to the shared blobs folder. */
  blobsCopied: number;
  blobs: string;
  files: ManifestFile[];
}

export interface BackupOptions {
  /** Throwing here abandons the backup (the server is stopping). */
  checkStop?: () => void;
  /** Pages per step (default 64). */
  pagesPerStep?: number;
}

function folderName(at: Date): string {
  return at.toISOString().replace(/[:.]/g, '-');
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Retries of a copy that found its database locked beyond the busy timeout. */
const BUSY_RETRIES = 3;
const BUSY_WAIT_MS = 2_000;

/**
 * Copies one database with the online backup API; resolves once the copy is complete. A store in
 * the middle of a long rollback-journal transaction (a repository import) keeps readers out:
 * the copy waits and tries again rather than failing the whole backup.
 */
async function copyDatabase(sourcePath: string, target: string, opts: BackupOptions, live?: Database.Database) {
  await mkdir(dirname(target), { recursive: true });
  for (let attempt = 0; ; attempt++) {
    try {
      return await copyDatabaseOnce(sourcePath, target, opts, live);
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (attempt >= BUSY_RETRIES || !/^SQLITE_(BUSY|LOCKED)/.test(code)) throw err;
      await rm(target, { force: true });
      await new Promise((resolve) => setTimeout(resolve, BUSY_WAIT_MS));
    }
  }
}

async function copyDatabaseOnce(sourcePath: string, target: string, opts: BackupOptions, live?: Database.Database) {
  const db = live ?? new Database(sourcePath, { readonly: true, fileMustExist: true });
  try {
    const step = opts.pagesPerStep ?? PAGES_PER_STEP;
    let restarts = 0;
    let lastRemaining = Infinity;
    await db.backup(target, {
      progress: ({ totalPages, remainingPages }) => {
        opts.checkStop?.();
        if (remainingPages > lastRemaining) restarts++;
        lastRemaining = remainingPages;
        return restarts >= MAX_RESTARTS ? totalPages : step;
      },
    });
  } finally {
    if (!live) db.close();
  }
  // A self-contained file: no -wal beside it, readable anywhere.
  const copy = new Database(target);
  try {
    copy.pragma('journal_mode = DELETE');
  } finally {
    copy.close();
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every file under `dir`, relative to it, in a stable order. */
export async function listFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** The account stores under the actor store directory: `<shard>/<account>/store.sqlite`. */
async function actorStoreFiles(dir: string): Promise<string[]> {
  return (await listFiles(dir)).filter((p) => p.split(sep).length === 3 && p.endsWith(sep + ACTOR_DB_FILE));
}

/** Copies the blobs not yet in `target`; returns how many it copied. */
async function copyNewBlobs(source: string, target: string, opts: BackupOptions): Promise<number> {
  let copied = 0;
  for (const rel of await listFiles(source)) {
    const to = join(target, rel);
    if (rel.split(sep).some((part) => part.startsWith('.')) || existsSync(to)) continue;
    opts.checkStop?.();
    await mkdir(dirname(to), { recursive: true });
    // Copied under a temporary name: a blob file that exists is always whole.
    const temp = `${to}.partial`;
    try {
      await copyFile(join(source, rel), temp);
    } catch (err) {
      // Deleted since it was listed (its last reference went): nothing to keep.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    await rename(temp, to);
    copied++;
  }
  return copied;
}

function lastSeqOf(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    const row = db
      .prepare(
        `SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'repo_seq'), 0),
                    coalesce((SELECT max(seq) FROM repo_seq), 0)) AS seq`,
      )
      .get() as { seq: number };
    return row.seq;
  } finally {
    db.close();
  }
}

/** The complete backups under `root`, oldest first. */
export async function listBackups(root: string): Promise<string[]> {
  const names = await readdir(root).catch(() => [] as string[]);
  return names.filter((n) => FOLDER_RE.test(n) && existsSync(join(root, n, MANIFEST_FILE))).sort();
}

/**
 * Takes one backup into a new folder under `root` and removes all but the newest `keep`.
 * Returns the folder and its manifest.
 */
export async function takeBackup(
  sources: BackupSources,
  root: string,
  keep: number,
  opts: BackupOptions = {},
): Promise<{ folder: string; manifest: BackupManifest }> {
  const createdAt = new Date();
  await mkdir(root, { recursive: true });
  // Leftovers of a backup that never finished (the process died during it).
  for (const name of await readdir(root)) {
    if (name.startsWith(TEMP_PREFIX)) await rm(join(root, name), { recursive: true, force: true });
  }
  let at = createdAt.getTime();
  let name = folderName(createdAt);
  while (existsSync(join(root, name))) name = folderName(new Date(++at));
  const temp = join(root, `${TEMP_PREFIX}${name}`);
  await mkdir(temp, { recursive: true, mode: 0o700 });
  try {
    const live = sources.liveConnections ?? new Map<string, Database.Database>();
    const copy = (from: string, to: string) => copyDatabase(from, join(temp, to), opts, live.get(from));

    await copy(sources.accountDbPath, LAYOUT.account);
    const rootIndex = join(sources.actorStoreDirectory, ROOT_INDEX_FILE);
    if (existsSync(rootIndex)) await copy(rootIndex, join(LAYOUT.actors, ROOT_INDEX_FILE));
    const stores = await actorStoreFiles(sources.actorStoreDirectory);
    let accounts = 0;
    for (const rel of stores) {
      const from = join(sources.actorStoreDirectory, rel);
      const keyFile = join(dirname(from), SIGNING_KEY_FILE);
      try {
        await copy(from, join(LAYOUT.actors, rel));
        // Written once when the account is created; without it the repo cannot be signed.
        if (existsSync(keyFile)) await copyFile(keyFile, join(temp, LAYOUT.actors, dirname(rel), SIGNING_KEY_FILE));
        accounts++;
      } catch (err) {
        // The account was deleted since the folder was listed.
        if (existsSync(from)) throw err;
        await rm(join(temp, LAYOUT.actors, dirname(rel)), { recursive: true, force: true });
      }
      await yieldToEventLoop();
    }
    const plc = join(sources.dataDirectory, LAYOUT.plc);
    if (existsSync(plc)) await copy(plc, LAYOUT.plc);
    // The event log last: an event whose change is in a copied database is either in the log's
    // copy already or still in that database's outbox, with the log's marker for start-up
    // recovery (a marker is committed before its outbox row, and dropped only once the outbox is
    // empty). Recovery skips an event the log holds (its event id is unique), so the restored
    // firehose has every event once.
    await copy(sources.sequencerDbPath, LAYOUT.sequencer);
    if (existsSync(sources.secretsPath)) {
      await copyFile(sources.secretsPath, join(temp, LAYOUT.secrets));
      await chmod(join(temp, LAYOUT.secrets), 0o600);
    }
    for (const secretFile of [LAYOUT.env, LAYOUT.oauthKeys]) {
      const from = join(sources.dataDirectory, secretFile);
      if (existsSync(from)) {
        await copyFile(from, join(temp, secretFile));
        await chmod(join(temp, secretFile), 0o600);
      }
    }

    // After the databases: every blob a copied store references is on disk by now.
    const blobsCopied = await copyNewBlobs(sources.blobDirectory, join(root, BLOBS_FOLDER), opts);

    const files: ManifestFile[] = [];
    for (const rel of await listFiles(temp)) {
      const path = join(temp, rel);
      files.push({ path: rel.split(sep).join('/'), size: (await stat(path)).size, sha256: await sha256File(path) });
    }
    const manifest: BackupManifest = {
      format: 1,
      createdAt: createdAt.toISOString(),
      finishedAt: new Date().toISOString(),
      portageVersion: sources.version,
      lastSeq: lastSeqOf(join(temp, LAYOUT.sequencer)),
      accounts,
      blobsCopied,
      blobs: `../${BLOBS_FOLDER}`,
      files,
    };
    await writeFile(join(temp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    const folder = join(root, name);
    await rename(temp, folder);
    await pruneBackups(root, keep);
    return { folder, manifest };
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Removes all but the newest `keep` backups, then the shared blobs no kept backup needs (a blob
 * deleted from the server lives on only as long as a backup that still references it).
 */
export async function pruneBackups(root: string, keep: number): Promise<string[]> {
  const backups = await listBackups(root);
  const removed = backups.slice(0, Math.max(0, backups.length - keep));
  for (const name of removed) await rm(join(root, name), { recursive: true, force: true });
  if (removed.length) await pruneSharedBlobs(root, backups.slice(removed.length));
  return removed;
}

/** Deletes the files of the shared blobs folder that none of `kept`'s account stores lists. */
async function pruneSharedBlobs(root: string, kept: string[]): Promise<void> {
  const needed = new Set<string>();
  for (const name of kept) {
    const actors = join(root, name, LAYOUT.actors);
    for (const rel of await actorStoreFiles(actors)) {
      const account = rel.split(sep)[1]!;
      const db = new Database(join(actors, rel), { readonly: true });
      try {
        for (const { cid } of db.prepare('SELECT cid FROM blob').all() as { cid: string }[]) {
          needed.add(join(account, cid));
        }
      } finally {
        db.close();
      }
    }
  }
  const blobs = join(root, BLOBS_FOLDER);
  for (const rel of await listFiles(blobs)) {
    if (!needed.has(rel)) await rm(join(blobs, rel), { force: true });
  }
}
