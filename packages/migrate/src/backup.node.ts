/**
 * The local backup as a directory (Node):
 *   repo.car            the account's repository as exported by the server (full CAR)
 *   blobs/<cid>         each blob, named by its CID, checked against it while written
 *   preferences.json    app.bsky preferences as the server returned them
 *   manifest.json       { did, repoCommit, updatedAt }
 * Every file appears by rename after it was written whole, so a killed run never leaves a
 * truncated file that a later run would trust.
 */
import { decode as decodeCbor } from '@atcute/cbor';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatCid, parseCid } from '@portage/atproto/cid';
import type { BackupSink } from './backup.ts';
import { MigrationError } from './errors.ts';

interface Manifest {
  did: string;
  repoCommit?: string;
  updatedAt?: string;
}

export class DirectoryBackup implements BackupSink {
  readonly dir: string;
  readonly did: string;
  #tmpCounter = 0;

  constructor(dir: string, did: string) {
    this.dir = dir;
    this.did = did;
  }

  /** Creates the folders and refuses a folder that holds another account's backup. */
  async open(): Promise<this> {
    await mkdir(join(this.dir, 'blobs'), { recursive: true, mode: 0o700 });
    const manifest = await this.#readManifest();
    if (manifest && manifest.did !== this.did) {
      throw new MigrationError(
        'BackupMismatch',
        `the backup folder ${this.dir} holds the account ${manifest.did}, not ${this.did}`,
        'Choose another --backup-dir (or --out) for this account.',
      );
    }
    if (!manifest) await this.#writeManifest({ did: this.did });
    return this;
  }

  async repoCommit(): Promise<string | undefined> {
    return (await this.#readManifest())?.repoCommit;
  }

  async writeRepo(body: ReadableStream<Uint8Array>, commit: string | undefined): Promise<void> {
    const tmp = this.#tmpPath('repo.car');
    try {
      await pipeline(Readable.fromWeb(body as never), createWriteStream(tmp, { mode: 0o600 }));
      await rename(tmp, join(this.dir, 'repo.car'));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await this.#writeManifest({ ...((await this.#readManifest()) ?? { did: this.did }), repoCommit: commit });
  }

  async hasBlob(cid: string): Promise<boolean> {
    try {
      await access(join(this.dir, 'blobs', safeCid(cid)));
      return true;
    } catch {
      return false;
    }
  }

  async writeBlob(cid: string, body: ReadableStream<Uint8Array>): Promise<void> {
    const expected = parseCid(cid).digest.contents;
    const hash = createHash('sha256');
    const tmp = this.#tmpPath(`blob-${safeCid(cid)}`);
    try {
      const source = Readable.fromWeb(body as never);
      source.on('data', (chunk: Buffer) => hash.update(chunk));
      await pipeline(source, createWriteStream(tmp, { mode: 0o600 }));
      const digest = hash.digest();
      if (!digest.equals(Buffer.from(expected))) {
        throw new MigrationError('BlobCorrupted', `blob ${cid} arrived with different bytes`, 'It is fetched again.');
      }
      await rename(tmp, join(this.dir, 'blobs', safeCid(cid)));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async writePreferences(preferences: unknown[]): Promise<void> {
    const tmp = this.#tmpPath('preferences.json');
    await writeFile(tmp, `${JSON.stringify({ preferences }, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, join(this.dir, 'preferences.json'));
  }

  async blobCids(): Promise<string[]> {
    return (await readdir(join(this.dir, 'blobs'))).filter((n) => !n.includes('.'));
  }

  #tmpPath(name: string): string {
    return join(this.dir, `.${name}.${process.pid}.${this.#tmpCounter++}.tmp`);
  }

  async #readManifest(): Promise<Manifest | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, 'manifest.json'), 'utf8')) as Manifest;
    } catch {
      return undefined;
    }
  }

  async #writeManifest(manifest: Manifest): Promise<void> {
    const tmp = this.#tmpPath('manifest.json');
    await writeFile(tmp, `${JSON.stringify({ ...manifest, updatedAt: new Date().toISOString() }, null, 2)}\n`, {
      mode: 0o600,
    });
    await rename(tmp, join(this.dir, 'manifest.json'));
  }
}

function safeCid(cid: string): string {
  // CIDs are base32 lower-case; anything else would be a path trick.
  if (!/^[a-z2-7]+$/.test(cid)) {
    throw new MigrationError('InvalidCid', `not a CID the backup can store: "${cid}"`, 'Report this server answer.');
  }
  return cid;
}

export interface BackupReport {
  did: string;
  repoCommit: string;
  blocks: number;
  blobs: number;
}

/**
 * Checks a backup folder on its own: the CAR parses, every block matches its CID, the root is a
 * commit for the manifest's DID and matches the manifest's commit; every blob hashes to its name.
 */
export async function verifyBackup(dir: string): Promise<BackupReport> {
  // Loaded here, not at the top: a migration run never needs the CAR reader.
  const { readCar } = await import('@portage/atproto/car');
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  const car = await readCar(Readable.toWeb(createReadStream(join(dir, 'repo.car'))) as ReadableStream<Uint8Array>, {
    requireRoot: true,
  });
  const root = formatCid(car.roots[0]!);
  let blocks = 0;
  let commitDid: unknown;
  for await (const block of car.blocks) {
    blocks++;
    if (formatCid(block.cid) === root) commitDid = (decodeCbor(block.bytes) as { did?: unknown }).did;
  }
  const fail = (what: string) => new MigrationError('BackupInvalid', `backup ${dir}: ${what}`, 'Run the backup again.');
  if (commitDid !== manifest.did) throw fail(`the repo commit is for ${String(commitDid)}, not ${manifest.did}`);
  if (manifest.repoCommit && manifest.repoCommit !== root) throw fail('repo.car does not end at the recorded commit');
  const names = (await readdir(join(dir, 'blobs'))).filter((n) => !n.startsWith('.'));
  for (const name of names) {
    const hash = createHash('sha256');
    await pipeline(createReadStream(join(dir, 'blobs', name)), hash);
    if (!hash.digest().equals(Buffer.from(parseCid(name).digest.contents))) throw fail(`blob ${name} is corrupted`);
  }
  return { did: manifest.did, repoCommit: root, blocks, blobs: names.length };
}
