/**
 * Bringing a server back from a backup (./snapshot.ts) into an empty or new data directory:
 * every file is checked against the manifest before anything is copied, the databases go into
 * the default layout of a data directory, each copy passes `PRAGMA integrity_check`, and the
 * blobs the restored accounts reference come from the backup's shared blobs folder. When any
 * step fails, what was written is removed again, leaving the directory as it was.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import Database from 'better-sqlite3';
import { openRootIndex } from '../actor-store/db.ts';
import { type BackupManifest, LAYOUT, listFiles, MANIFEST_FILE, ROOT_INDEX_FILE } from './snapshot.ts';

export class RestoreError extends Error {}

export interface RestoreResult {
  manifest: BackupManifest;
  databases: number;
  blobsRestored: number;
  /** Blobs a restored account references that the backup does not hold (`<account>/<cid>`). */
  blobsMissing: string[];
  secretsRestored: boolean;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function readManifest(folder: string): Promise<BackupManifest> {
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(await readFile(join(folder, MANIFEST_FILE), 'utf8')) as BackupManifest;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new RestoreError(
        `${folder} is not a Portage server backup: it has no ${MANIFEST_FILE} (pick one of the dated folders in the backup directory).`,
      );
    }
    throw new RestoreError(`The backup in ${folder} is damaged: its ${MANIFEST_FILE} cannot be read.`);
  }
  if (manifest.format !== 1 || !Array.isArray(manifest.files)) {
    throw new RestoreError(`${folder} holds a backup this version of Portage does not know how to restore.`);
  }
  for (const file of manifest.files) {
    if (typeof file.path !== 'string' || file.path.split('/').some((p) => p === '..' || p === '')) {
      throw new RestoreError(`The backup in ${folder} is damaged: its manifest names a file outside the backup.`);
    }
  }
  return manifest;
}

/** Checks every file of the backup against the manifest (presence, size, SHA-256). */
async function verifyFiles(folder: string, manifest: BackupManifest): Promise<void> {
  for (const file of manifest.files) {
    const path = join(folder, ...file.path.split('/'));
    const size = await stat(path).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === undefined) throw new RestoreError(`The backup in ${folder} is damaged: ${file.path} is missing.`);
    if (size !== file.size || (await sha256File(path)) !== file.sha256) {
      throw new RestoreError(`The backup in ${folder} is damaged: ${file.path} is not the file the backup wrote.`);
    }
  }
  if (
    !manifest.files.some((f) => f.path === LAYOUT.account) ||
    !manifest.files.some((f) => f.path === LAYOUT.sequencer)
  ) {
    throw new RestoreError(`The backup in ${folder} is incomplete: it lacks the account or sequencer database.`);
  }
}

function checkIntegrity(path: string, name: string): void {
  let result: string;
  try {
    const db = new Database(path, { fileMustExist: true });
    try {
      result = db.pragma('integrity_check', { simple: true }) as string;
    } finally {
      db.close();
    }
  } catch (err) {
    result = (err as Error).message;
  }
  if (result !== 'ok')
    throw new RestoreError(`The backup is damaged: ${name} fails SQLite's integrity check (${result}).`);
}

/**
 * The root index was copied before the stores (it may be behind them, or name an account
 * deleted meanwhile): made to match the restored stores exactly.
 */
function rebuildRootIndex(path: string, roots: { did: string; cid: string; rev: string }[]): void {
  const db = openRootIndex(path);
  try {
    db.transaction(() => {
      db.prepare('DELETE FROM repo_root').run();
      const insert = db.prepare('INSERT INTO repo_root (did, cid, rev) VALUES (?, ?, ?)');
      for (const root of roots) insert.run(root.did, root.cid, root.rev);
    })();
    db.pragma('journal_mode = DELETE');
  } finally {
    db.close();
  }
}

/** Restores the backup in `folder` into `dataDir`, which must be empty or not exist yet. */
export async function restoreBackup(folder: string, dataDir: string): Promise<RestoreResult> {
  folder = resolve(folder);
  dataDir = resolve(dataDir);
  const manifest = await readManifest(folder);
  const existing = await readdir(dataDir).catch(() => undefined);
  if (existing && existing.length > 0) {
    throw new RestoreError(
      `${dataDir} is not empty; restore into an empty or new directory, so nothing already there is overwritten.`,
    );
  }
  await verifyFiles(folder, manifest);

  const created = existing === undefined;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  try {
    let databases = 0;
    for (const file of manifest.files) {
      const to = join(dataDir, ...file.path.split('/'));
      await mkdir(dirname(to), { recursive: true, mode: 0o700 });
      await copyFile(join(folder, ...file.path.split('/')), to);
      if (
        file.path === LAYOUT.secrets ||
        file.path === LAYOUT.env ||
        file.path === LAYOUT.oauthKeys ||
        file.path.endsWith('signing-key.json')
      ) {
        await chmod(to, 0o600);
      }
      if (file.path.endsWith('.sqlite')) {
        checkIntegrity(to, file.path);
        databases++;
      }
    }

    const blobSource = resolve(folder, manifest.blobs ?? '../blobs');
    const blobTarget = join(dataDir, LAYOUT.blobs);
    let blobsRestored = 0;
    const blobsMissing: string[] = [];
    const actors = join(dataDir, LAYOUT.actors);
    const roots: { did: string; cid: string; rev: string }[] = [];
    for (const rel of await listFiles(actors)) {
      const parts = rel.split(sep);
      if (parts.length !== 3 || parts[2] !== 'store.sqlite') continue;
      const account = parts[1]!;
      const db = new Database(join(actors, rel), { readonly: true });
      let cids: string[];
      try {
        cids = (db.prepare('SELECT cid FROM blob WHERE temp_key IS NULL').all() as { cid: string }[]).map((r) => r.cid);
        roots.push(...(db.prepare('SELECT did, cid, rev FROM repo_root').all() as typeof roots));
      } finally {
        db.close();
      }
      for (const cid of cids) {
        const from = join(blobSource, account, cid);
        if (!existsSync(from)) {
          blobsMissing.push(`${account}/${cid}`);
          continue;
        }
        await mkdir(join(blobTarget, account), { recursive: true });
        await copyFile(from, join(blobTarget, account, cid));
        blobsRestored++;
      }
    }
    rebuildRootIndex(join(actors, ROOT_INDEX_FILE), roots);
    return {
      manifest,
      databases,
      blobsRestored,
      blobsMissing,
      secretsRestored: manifest.files.some((f) => f.path === LAYOUT.secrets),
    };
  } catch (err) {
    if (created) await rm(dataDir, { recursive: true, force: true });
    else for (const name of await readdir(dataDir)) await rm(join(dataDir, name), { recursive: true, force: true });
    throw err;
  }
}
