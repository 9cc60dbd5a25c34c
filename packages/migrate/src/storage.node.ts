/** A directory as MigrationStorage (Node): one file per key, replaced atomically by rename. */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MigrationStorage } from './storage.ts';

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

  #path(key: string): string {
    // Keys contain DIDs (colons); keep file names portable.
    return join(this.dir, `${key.replace(/[^a-zA-Z0-9._-]/g, '_')}.json`);
  }
}
