/**
 * Each account's repository signing key, kept next to its store as a 0600 file. The actor store
 * owns it because only commits use it, and an account's directory then holds everything needed
 * to move or restore the repository. Importing a key costs more than signing with it, so a
 * bounded number stay in memory.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ExportableSigningKey,
  generateSigningKey,
  importSigningKey,
  type KeyAlgorithm,
} from '@portage/atproto/crypto';
import { repoNotFound } from './errors.ts';

interface KeyFile {
  algorithm: KeyAlgorithm;
  privateKeyHex: string;
}

const MAX_CACHED_KEYS = 1000;

export class SigningKeys {
  private readonly cache = new Map<string, ExportableSigningKey>();
  private readonly pathOf: (did: string) => string;
  private readonly reservedDir: string;

  /** `pathOf`: where an account's key file lives; `reservedDir`: keys reserved for accounts to come. */
  constructor(pathOf: (did: string) => string, reservedDir: string) {
    this.pathOf = pathOf;
    this.reservedDir = reservedDir;
  }

  private reservedPath(name: string): string {
    return join(this.reservedDir, `${name.replace(/[^a-zA-Z0-9._-]/g, '_')}.json`);
  }

  /**
   * A key reserved for an account that will be created here (reserveSigningKey): a DID moving in
   * can name it in its PLC operation before the account exists. Kept under the DID (asking again
   * gives the same key, as the reference does), or under its own did:key when no DID is given.
   */
  async reserve(did: string | undefined): Promise<string> {
    if (did) {
      const existing = await this.reserved(did);
      if (existing) return existing.did();
    }
    const key = await generateSigningKey('secp256k1');
    await mkdir(this.reservedDir, { recursive: true, mode: 0o700 });
    const content: KeyFile = { algorithm: key.algorithm, privateKeyHex: key.privateKeyHex() };
    await writeFile(this.reservedPath(did ?? key.did()), `${JSON.stringify(content)}\n`, { mode: 0o600 });
    return key.did();
  }

  /** The key reserved for `did`, if any (createAccount for a DID moving in uses it). */
  async reserved(did: string): Promise<ExportableSigningKey | undefined> {
    const path = this.reservedPath(did);
    if (!existsSync(path)) return undefined;
    const content = JSON.parse(await readFile(path, 'utf8')) as KeyFile;
    return importSigningKey(content.privateKeyHex, content.algorithm);
  }

  /** Drops the reservation once the account holds the key. */
  async clearReserved(did: string): Promise<void> {
    await rm(this.reservedPath(did), { force: true });
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
