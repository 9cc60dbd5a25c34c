/** A directory as MigrationStorage (Node): one file per key, replaced atomically by rename. */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import type { LockAttempt, MigrationStorage } from './storage.ts';

interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

export class DirectoryStorage implements MigrationStorage {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  async get(key: string): Promise<string | undefined> {
    try {
      return await readFile(this.#path(key), 'utf8');
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async set(key: string, value: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const path = this.#path(key);
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, value, { mode: 0o600 });
    await rename(tmp, path);
  }

  /**
   * A lock file created exclusively and whole (createWhole), holding this process's pid. A file
   * whose process is gone (on this host) is stale: it is removed (breakStaleLock) and the lock
   * taken. A pid reused by an unrelated process keeps the lock held; the refusal names the file to
   * remove by hand then.
   */
  async lock(name: string): Promise<LockAttempt> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const path = join(this.dir, `${safeName(name)}.lock`);
    const me: LockOwner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
    for (let attempt = 0; ; attempt++) {
      try {
        await createWhole(path, me);
        await removeStrayTemporaries(this.dir);
        return {
          acquired: true,
          release: async () => {
            // Only our own file: never a lock another run took after ours was judged stale.
            const owner = await readOwner(path);
            if (owner?.pid === me.pid && owner.startedAt === me.startedAt) await rm(path, { force: true });
          },
        };
      } catch (err) {
        if ((err as { code?: string }).code !== 'EEXIST') throw err;
      }
      const owner = await readOwner(path);
      // Unreadable (damaged, or being written on a filesystem without hard links) or alive: held.
      // Dead on this host: stale.
      const stale = owner !== undefined && owner.host === me.host && !processAlive(owner.pid);
      if (!stale || attempt >= 5) {
        const holder = owner
          ? `pid ${owner.pid}${owner.host !== me.host ? ` on ${owner.host}` : ''}`
          : 'an unknown process';
        return { acquired: false, holder, location: path };
      }
      await breakStaleLock(path, owner, me);
    }
  }

  #path(key: string): string {
    return join(this.dir, `${safeName(key)}.json`);
  }
}

// Keys contain DIDs (colons); keep file names portable.
function safeName(key: string): string {
  return key.replace(/[^a-zA-Z0-9._-]/g, '_');
}

/**
 * Removes the stale lock at `path` whose owner was `stale`. Runs started together after a crash
 * all find the same stale file, and removing it by name would let a slower one delete the lock a
 * faster one has just created in its place. So removal happens only under a second exclusive
 * file (`<lock>.breaking`, made by createWhole too), after reading the lock again: while one run
 * holds it nobody else removes anything, and a lock file is only ever replaced after being
 * removed. A breaker that died holding it (on this host) has its file removed, and the next
 * attempt breaks the lock.
 */
async function breakStaleLock(path: string, stale: LockOwner, me: LockOwner): Promise<void> {
  const guard = `${path}.breaking`;
  try {
    await createWhole(guard, me);
  } catch (err) {
    if ((err as { code?: string }).code !== 'EEXIST') throw err;
    const breaker = await readOwner(guard);
    if (breaker && breaker.host === me.host && !processAlive(breaker.pid)) await rm(guard, { force: true });
    else await sleep(20); // another run is breaking it right now
    return;
  }
  try {
    const current = await readOwner(path);
    if (current?.pid === stale.pid && current.startedAt === stale.startedAt) await rm(path, { force: true });
  } finally {
    await rm(guard, { force: true });
  }
}

/**
 * Creates `path` holding `owner`, failing with EEXIST when it exists (like O_EXCL). The file
 * appears with its content: it is a hard link to a finished temporary file. Opening the lock with
 * O_EXCL and then writing would leave an empty file when the process is killed in between, and
 * an empty lock names no process, so it would read as held until removed by hand.
 */
async function createWhole(path: string, owner: LockOwner): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomUUID()}.tmp`;
  await writeFile(tmp, `${JSON.stringify(owner)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    // Filesystems without hard links (FAT, some network mounts): O_EXCL, then the content.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    const file = await open(path, 'wx', 0o600);
    try {
      await file.writeFile(`${JSON.stringify(owner)}\n`);
    } finally {
      await file.close();
    }
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Removes the temporary files (`<name>.<pid>[.<uuid>].tmp`, from set and createWhole) that runs
 * killed between writing and renaming or linking them left in `dir`. Only those of processes
 * gone: a live run's file may be about to be renamed. Best effort; taking the lock never fails
 * for it.
 */
async function removeStrayTemporaries(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = /\.(\d+)(?:\.[0-9a-f-]{36})?\.tmp$/.exec(name)?.[1];
    if (pid !== undefined && !processAlive(Number(pid))) await rm(join(dir, name), { force: true }).catch(() => {});
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const owner = JSON.parse(await readFile(path, 'utf8')) as Partial<LockOwner>;
    return typeof owner.pid === 'number' && typeof owner.host === 'string' ? (owner as LockOwner) : undefined;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as { code?: string }).code === 'EPERM';
  }
}
