/**
 * Each account's repository signing key, kept next to its store as a 0600 file. The actor store
 * owns it because only commits use it, and an account's directory then holds everything needed
 * to move or restore the repository. Importing a key costs more than signing with it, so a
 * bounded number stay in memory.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { type ExportableSigningKey, importSigningKey, type KeyAlgorithm } from '@portage/atproto/crypto';
import { repoNotFound } from './errors.ts';

interface KeyFile {
  algorithm: KeyAlgorithm;
  privateKeyHex: string;
}

const MAX_CACHED_KEYS = 1000;

export class SigningKeys {
  private readonly cache = new Map<string, ExportableSigningKey>();
  private readonly pathOf: (did: string) => string;

  /** `pathOf`: where an account's key file lives. */
  constructor(pathOf: (did: string) => string) {
    this.pathOf = pathOf;
  }

  /** The account's key; RepoNotFound when it has none. */
  async get(did: string): Promise<ExportableSigningKey> {
    const cached = this.cache.get(did);
    if (cached) return cached;
    const path = this.pathOf(did);
    if (!existsSync(path)) throw repoNotFound(did);
    const content = JSON.parse(await readFile(path, 'utf8')) as KeyFile;
    const key = await importSigningKey(content.privateKeyHex, content.algorithm);
    if (this.cache.size >= MAX_CACHED_KEYS) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(did, key);
    return key;
  }

  /** Stores a new account's key (its directory exists: the store was opened first). */
  async write(did: string, key: ExportableSigningKey): Promise<void> {
    const content: KeyFile = { algorithm: key.algorithm, privateKeyHex: key.privateKeyHex() };
    await writeFile(this.pathOf(did), `${JSON.stringify(content)}\n`, { mode: 0o600, flag: 'w' });
    this.cache.delete(did);
  }

  forget(did: string): void {
    this.cache.delete(did);
  }
}
