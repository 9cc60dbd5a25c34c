/**
 * The local backup (the engine's BackupSink) in the browser's file store, one folder per account:
 *   repo.car          the repository as the old server exported it
 *   blobs/<cid>       each blob, checked against its CID before it is recorded
 *   blob-types.jsonl  one {cid, type} line per stored blob: the content type it came with
 *                     (uploading it again needs it)
 *   preferences.json  the preferences as the old server returned them
 *   manifest.json     { did, repoCommit }
 * The names match `portage backup`'s folder. A blob counts as stored only once its line is in
 * blob-types.jsonl, which is written after the blob's file is whole: so a blob file needs no
 * rename to become visible, and the lines of blobs finished together go out in one write. A
 * browser file store cannot append in place, so the list is written whole each time; it is small.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { type Cid, cidMatches, parseCid } from '@portage/atproto/cid';
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
const TYPES_FILE = 'blob-types.jsonl';
const LEGACY_TYPES_DIR = 'types';
/** The pause between two writes of blob-types.jsonl (nothing waits for them but hasBlob). */
const TYPES_WRITE_GAP_MS = 100;

/**
 * Whether whole bytes hash to the CID's digest: with WebCrypto, one call per blob, which does in
 * native code what the synchronous JavaScript SHA-256 (right for many small blocks) does slowly
 * for large bodies.
 */
async function bytesMatch(cid: Cid, bytes: Uint8Array): Promise<boolean> {
  if (cid.digest.codec !== 0x12) return false;
  if (!globalThis.crypto?.subtle) return cidMatches(cid, bytes);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return sameBytes(digest, cid.digest.contents);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

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
  /** Blob files present, from one listing of the folder (whole or not: #types says which are). */
  #names: Promise<Set<string>> | undefined;
  /** Content types of the stored blobs ('' when none was given), as blob-types.jsonl holds them. */
  #types: Promise<Map<string, string>> | undefined;
  /** The blob-types.jsonl write under way, and the one queued behind it (it takes every line recorded until it starts). */
  #typesWriting: Promise<void> = Promise.resolve();
  #typesQueued: Promise<void> | undefined;
  /** Blobs whose line is not written yet, with the write that takes it. */
  readonly #unsaved = new Map<string, Promise<void>>();
  /** Blobs this object stored, checked against their CIDs as they were written. */
  readonly #checked = new Set<string>();
  /** The page's early download of the repository (early-repo.ts), if one is under way. */
  readonly #earlyRepo: Promise<void> | undefined;

  constructor(files: FileStore, did: string, earlyRepo?: Promise<void>) {
    this.#files = files;
    this.did = did;
    this.#dir = backupFolder(did);
    this.#earlyRepo = earlyRepo;
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

  /**
   * Waits for the page's early download first: the run then finds the CAR it stored rather than
   * fetching the repository a second time alongside it.
   */
  async repoCommit(): Promise<string | undefined> {
    await this.#earlyRepo?.catch(() => {});
    return this.storedRepoCommit();
  }

  /** The commit of the CAR stored right now, whatever download is under way. */
  async storedRepoCommit(): Promise<string | undefined> {
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

  #blobNames(): Promise<Set<string>> {
    this.#names ??= this.#files.list(`${this.#dir}/blobs`).then((names) => new Set(names));
    return this.#names;
  }

  #blobTypes(): Promise<Map<string, string>> {
    this.#types ??= this.#readTypes();
    return this.#types;
  }

  async #readTypes(): Promise<Map<string, string>> {
    const types = new Map<string, string>();
    const text = await (await this.#files.read(`${this.#dir}/${TYPES_FILE}`))?.text();
    for (const line of (text ?? '').split('\n')) {
      try {
        const entry = JSON.parse(line) as { cid?: unknown; type?: unknown };
        if (typeof entry.cid === 'string') types.set(entry.cid, typeof entry.type === 'string' ? entry.type : '');
      } catch {
        // An empty or damaged line: that blob counts as not stored, and is fetched again.
      }
    }
    // A backup an earlier version of the page wrote kept each type in a file of its own.
    for (const cid of await this.#files.list(`${this.#dir}/${LEGACY_TYPES_DIR}`)) {
      if (types.has(cid)) continue;
      const type = await (await this.#files.read(`${this.#dir}/${LEGACY_TYPES_DIR}/${cid}`))?.text();
      if (type !== undefined) types.set(cid, type);
    }
    return types;
  }

  /**
   * Writes blob-types.jsonl with every type recorded so far; resolves once a write that holds them
   * is done. A write starts a moment after the one before it ended, so that each takes the blobs
   * finished meanwhile: every write costs the browser's storage process several calls.
   */
  #saveTypes(): Promise<void> {
    this.#typesQueued ??= this.#typesWriting.then(async () => {
      await new Promise((resolve) => setTimeout(resolve, TYPES_WRITE_GAP_MS));
      this.#typesQueued = undefined;
      const lines = [...(await this.#blobTypes())].map(([cid, type]) => `${JSON.stringify({ cid, type })}\n`);
      await this.#files.write(`${this.#dir}/${TYPES_FILE}`, lines.join(''));
    });
    const queued = this.#typesQueued;
    this.#typesWriting = queued.catch(() => {});
    return queued;
  }

  async hasBlob(cid: string): Promise<boolean> {
    await this.#unsaved.get(cid)?.catch(() => {});
    const [files, types] = await Promise.all([this.#blobNames(), this.#blobTypes()]);
    return files.has(cid) && types.has(cid);
  }

  /**
   * Resolves once the blob's file is whole and its line is queued, not written: the download that
   * fed it moves on to the next blob while the list is written for several at once. hasBlob, the
   * question whether the backup holds a blob, waits for that write.
   */
  async writeBlob(cid: string, body: ReadableStream<Uint8Array> | Uint8Array, contentType?: string): Promise<void> {
    const parsed = parseCid(cid);
    const corrupted = () =>
      new MigrationError('BlobCorrupted', `blob ${cid} arrived with different bytes`, 'It is fetched again.');
    const path = `${this.#dir}/blobs/${cid}`;
    const [names, types] = await Promise.all([this.#blobNames(), this.#blobTypes()]);
    if (body instanceof Uint8Array && !(await bytesMatch(parsed, body))) throw corrupted();
    // Until its new line is written, a blob written again does not count as stored.
    types.delete(cid);
    this.#checked.delete(cid);
    try {
      if (body instanceof Uint8Array) {
        await this.#files.write(path, body, undefined, { inPlace: true });
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
        const check = () => {
          if (!sameBytes(hash.digest(), parsed.digest.contents)) throw corrupted();
        };
        await this.#files.write(path, hashing, check, { inPlace: true });
      }
    } catch (err) {
      names.delete(cid); // a failed write in place leaves no file
      throw err;
    }
    names.add(cid);
    this.#checked.add(cid);
    types.set(cid, contentType ?? '');
    const saved = this.#saveTypes();
    this.#unsaved.set(cid, saved);
    saved.then(
      () => {
        if (this.#unsaved.get(cid) === saved) this.#unsaved.delete(cid);
      },
      () => {
        if (this.#unsaved.get(cid) !== saved) return;
        this.#unsaved.delete(cid);
        types.delete(cid);
        this.#checked.delete(cid);
      },
    );
  }

  async blobContentType(cid: string): Promise<string | undefined> {
    return (await this.#blobTypes()).get(cid) || undefined;
  }

  async readBlob(cid: string): Promise<StoredBlob | undefined> {
    if (!(await this.#blobTypes()).has(cid)) return undefined;
    const file = await this.#files.read(`${this.#dir}/blobs/${cid}`);
    if (!file) {
      (await this.#blobNames()).delete(cid);
      return undefined;
    }
    // A blob this page stored was hashed on its way in: it goes as the file, which the browser
    // sends from storage without a copy through the page. An older small one comes as bytes, for
    // the engine to check before sending.
    const asFile = file.size > READ_WHOLE_BYTES || this.#checked.has(cid);
    return { size: file.size, read: async () => (asFile ? file : new Uint8Array(await file.arrayBuffer())) };
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
    const types = await this.#blobTypes();
    for (const cid of await this.#files.list(`${this.#dir}/blobs`)) {
      if (!types.has(cid)) continue; // a write cut off: not part of the backup
      const body = await this.#files.read(`${this.#dir}/blobs/${cid}`);
      if (!body) continue;
      entries.push({ path: `${folder}/blobs/${cid}`, body });
      const type = types.get(cid);
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
