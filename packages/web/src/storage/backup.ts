/**
 * The local backup (the engine's BackupSink) in the browser's file store, one folder per account:
 *   repo.car          the repository as the old server exported it
 *   blobs/<cid>       each blob, checked against its CID before it becomes visible
 *   types/<cid>       the content type the blob came with (uploading it again needs it)
 *   preferences.json  the preferences as the old server returned them
 *   manifest.json     { did, repoCommit }
 * The names match `portage backup`'s folder, except that the content types are one small file
 * per blob instead of one appended list (a browser file store cannot append in place).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { cidMatches, parseCid } from '@portage/atproto/cid';
import type { BackupSink, StoredBlob } from '@portage/migrate';
import { MigrationError } from '@portage/migrate';
import { type ArchiveEntry, tarArchive } from './archive.ts';
import type { FileStore } from './files.ts';

interface Manifest {
  did: string;
  repoCommit?: string;
}

/** Blobs up to this size are handed back as bytes; bigger ones as a Blob read while sent. */
const READ_WHOLE_BYTES = 4 * 1024 * 1024;

const safeDid = (did: string) => did.replace(/[^a-zA-Z0-9.-]/g, '_');

export function backupFolder(did: string): string {
  return `backups/${safeDid(did)}`;
}

/** The name of the downloaded backup and of the folder it unpacks to. */
export function backupName(did: string): string {
  return `portage-backup-${safeDid(did)}`;
}

export class BrowserBackup implements BackupSink {
  readonly #files: FileStore;
  readonly #dir: string;
  readonly did: string;
  #stored: Promise<Set<string>> | undefined;

  constructor(files: FileStore, did: string) {
    this.#files = files;
    this.did = did;
    this.#dir = backupFolder(did);
  }

  async open(): Promise<this> {
    const manifest = await this.#manifest();
    if (!manifest || manifest.did !== this.did) await this.#writeManifest({ did: this.did });
    return this;
  }

  async #manifest(): Promise<Manifest | undefined> {
    try {
      const text = await (await this.#files.read(`${this.#dir}/manifest.json`))?.text();
      return text ? (JSON.parse(text) as Manifest) : undefined;
    } catch {
      return undefined;
    }
  }

  async #writeManifest(m: Manifest): Promise<void> {
    await this.#files.write(`${this.#dir}/manifest.json`, JSON.stringify(m));
  }

  async repoCommit(): Promise<string | undefined> {
    return (await this.#manifest())?.repoCommit;
  }

  async writeRepo(body: ReadableStream<Uint8Array>, commit: string | undefined): Promise<void> {
    await this.#files.write(`${this.#dir}/repo.car`, body);
    await this.#writeManifest({ did: this.did, repoCommit: commit });
  }

  async readRepo(): Promise<Blob | undefined> {
    if (!(await this.repoCommit())) return undefined;
    return this.#files.read(`${this.#dir}/repo.car`);
  }

  #storedBlobs(): Promise<Set<string>> {
    this.#stored ??= this.#files.list(`${this.#dir}/blobs`).then((names) => new Set(names));
    return this.#stored;
  }

  async hasBlob(cid: string): Promise<boolean> {
    return (await this.#storedBlobs()).has(cid);
  }

  async writeBlob(cid: string, body: ReadableStream<Uint8Array> | Uint8Array, contentType?: string): Promise<void> {
    const parsed = parseCid(cid);
    const corrupted = () =>
      new MigrationError('BlobCorrupted', `blob ${cid} arrived with different bytes`, 'It is fetched again.');
    if (body instanceof Uint8Array) {
      if (!cidMatches(parsed, body)) throw corrupted();
      await this.#files.write(`${this.#dir}/blobs/${cid}`, body);
    } else {
      const hash = sha256.create();
      const hashing = body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            hash.update(chunk);
            controller.enqueue(chunk);
          },
        }),
      );
      const expected = parsed.digest.contents;
      await this.#files.write(`${this.#dir}/blobs/${cid}`, hashing, () => {
        const got = hash.digest();
        if (got.length !== expected.length || got.some((b, i) => b !== expected[i])) throw corrupted();
      });
    }
    if (contentType) await this.#files.write(`${this.#dir}/types/${cid}`, contentType);
    (await this.#storedBlobs()).add(cid);
  }

  async blobContentType(cid: string): Promise<string | undefined> {
    return (await (await this.#files.read(`${this.#dir}/types/${cid}`))?.text()) || undefined;
  }

  async readBlob(cid: string): Promise<StoredBlob | undefined> {
    const file = await this.#files.read(`${this.#dir}/blobs/${cid}`);
    if (!file) {
      (await this.#storedBlobs()).delete(cid);
      return undefined;
    }
    return {
      size: file.size,
      read: async () => (file.size <= READ_WHOLE_BYTES ? new Uint8Array(await file.arrayBuffer()) : file),
    };
  }

  async writePreferences(preferences: unknown[]): Promise<void> {
    await this.#files.write(`${this.#dir}/preferences.json`, `${JSON.stringify({ preferences }, null, 2)}\n`);
  }

  /**
   * The backup as a tar of the folder `portage backup` writes, under `folder/`; undefined when
   * nothing is stored yet.
   */
  async archive(folder: string): Promise<Blob | undefined> {
    const manifest = await this.#manifest();
    const repo = await this.readRepo();
    if (!manifest || !repo) return undefined;
    const entries: ArchiveEntry[] = [{ path: `${folder}/repo.car`, body: repo }];
    const lines: string[] = [];
    for (const cid of await this.#files.list(`${this.#dir}/blobs`)) {
      const body = await this.#files.read(`${this.#dir}/blobs/${cid}`);
      if (!body) continue;
      entries.push({ path: `${folder}/blobs/${cid}`, body });
      const type = await this.blobContentType(cid);
      if (type) lines.push(`${JSON.stringify({ cid, type })}\n`);
    }
    entries.push({ path: `${folder}/blob-types.jsonl`, body: new Blob(lines) });
    const preferences = await this.#files.read(`${this.#dir}/preferences.json`);
    if (preferences) entries.push({ path: `${folder}/preferences.json`, body: preferences });
    const updatedAt = new Date().toISOString();
    entries.push({
      path: `${folder}/manifest.json`,
      body: new Blob([`${JSON.stringify({ ...manifest, updatedAt }, null, 2)}\n`]),
    });
    return tarArchive(entries);
  }
}
