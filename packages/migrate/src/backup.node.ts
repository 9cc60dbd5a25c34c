/**
 * The local backup as a directory (Node), in the one layout `portage backup`, the migration's
 * backup and the wizard's download share (ARCHITECTURE.md, "The backup layout"):
 *   repo.car            the account's repository as exported by the server (full CAR)
 *   blobs/<cid>         each blob, named by its CID, checked against it while written
 *   blob-types.jsonl    one {"cid","type"} line per stored blob: the content type it came with
 *   preferences.json    app.bsky preferences as the server returned them
 *   manifest.json       { did, repoCommit, blobsCompleteAt, signingKey?, updatedAt }: blobsCompleteAt
 *                       is the repository revision up to which every blob is stored; signingKey
 *                       the account's key its commit is signed with
 * Every file appears by rename after it was written whole, so a killed run never leaves a
 * truncated file that a later run would trust. blob-types.jsonl is the exception: it only grows,
 * by one line per blob once the blob is in place (rewriting a whole map per blob would cost
 * quadratic time on accounts with many thousand blobs), and a line cut by a kill fails to parse
 * and is skipped: its blob is then simply fetched again.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, openAsBlob } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseCid } from '@portage/atproto/cid';
import type { BackupSink, StoredBlob } from './backup.ts';
import { MigrationError } from './errors.ts';

interface Manifest {
  did: string;
  repoCommit?: string;
  blobsCompleteAt?: string;
  /** The account's #atproto key (did:key) when the repo was saved: what its commit is signed with. */
  signingKey?: string;
  updatedAt?: string;
}

export class DirectoryBackup implements BackupSink {
  readonly dir: string;
  readonly did: string;
  #tmpCounter = 0;
  /** The blobs stored, read from the folder once: a lookup per blob would cost a syscall each. */
  #stored: Promise<Set<string>> | undefined;
  /** blob-types.jsonl, read once; `cutLine` when it ends mid-line (a run was killed appending). */
  #types: Promise<{ byCid: Map<string, string>; cutLine: boolean }> | undefined;
  /** Appends to blob-types.jsonl, one after the other, so two lines never interleave. */
  #typeAppends: Promise<void> = Promise.resolve();
  /** Lines waiting for the append after the one under way: they go in together. */
  #nextTypeAppend: { lines: string[]; written: Promise<void> } | undefined;

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
        'Choose another backup folder for this account.',
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

  /** Records the key the stored commit is signed with, so the backup can check itself offline. */
  async recordSigningKey(signingKey: string): Promise<void> {
    const manifest = (await this.#readManifest()) ?? { did: this.did };
    if (manifest.signingKey === signingKey) return;
    await this.#writeManifest({ ...manifest, signingKey });
  }

  /** The saved preferences, or undefined when none were saved. */
  async readPreferences(): Promise<unknown[] | undefined> {
    try {
      const saved = JSON.parse(await readFile(join(this.dir, 'preferences.json'), 'utf8')) as { preferences?: unknown };
      return Array.isArray(saved.preferences) ? saved.preferences : undefined;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async readRepo(): Promise<Blob | undefined> {
    try {
      // File-backed: it streams from disk as it is sent.
      return await openAsBlob(join(this.dir, 'repo.car'), { type: 'application/vnd.ipld.car' });
    } catch (err) {
      // openAsBlob reports a missing file as an invalid argument, not ENOENT: look again.
      const missing = await stat(join(this.dir, 'repo.car')).then(
        () => false,
        (statError: { code?: string }) => statError.code === 'ENOENT',
      );
      if (!missing) throw err;
      return undefined;
    }
  }

  async hasBlob(cid: string): Promise<boolean> {
    return (await this.#storedBlobs()).has(safeCid(cid));
  }

  async writeBlob(cid: string, body: ReadableStream<Uint8Array> | Uint8Array, contentType?: string): Promise<void> {
    const expected = Buffer.from(parseCid(cid).digest.contents);
    const hash = createHash('sha256');
    const tmp = this.#tmpPath(`blob-${safeCid(cid)}`);
    try {
      if (body instanceof Uint8Array) {
        hash.update(body);
        if (!hash.digest().equals(expected)) throw blobCorrupted(cid);
        await writeFile(tmp, body, { mode: 0o600 });
      } else {
        const source = Readable.fromWeb(body as never);
        source.on('data', (chunk: Buffer) => hash.update(chunk));
        await pipeline(source, createWriteStream(tmp, { mode: 0o600 }));
        if (!hash.digest().equals(expected)) throw blobCorrupted(cid);
      }
      await rename(tmp, join(this.dir, 'blobs', cid));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    (await this.#storedBlobs()).add(cid);
    if (contentType !== undefined && isContentType(contentType)) await this.#recordType(cid, contentType);
  }

  async blobContentType(cid: string): Promise<string | undefined> {
    return (await this.#blobTypes()).byCid.get(cid);
  }

  async #recordType(cid: string, contentType: string): Promise<void> {
    const types = await this.#blobTypes();
    if (types.byCid.get(cid) === contentType) return;
    // Parallel transfers store blobs together: their lines share one append (one open, write and
    // close) instead of taking one each.
    let batch = this.#nextTypeAppend;
    if (!batch) {
      const lines: string[] = [];
      const written = this.#typeAppends.then(async () => {
        this.#nextTypeAppend = undefined; // lines from now on wait for the next append
        const text = lines.join('');
        await appendFile(join(this.dir, BLOB_TYPES), types.cutLine ? `\n${text}` : text, { mode: 0o600 });
        types.cutLine = false;
      });
      batch = this.#nextTypeAppend = { lines, written };
      this.#typeAppends = written.catch(() => {});
    }
    batch.lines.push(`${JSON.stringify({ cid, type: contentType })}\n`);
    await batch.written;
    types.byCid.set(cid, contentType);
  }

  #blobTypes(): Promise<{ byCid: Map<string, string>; cutLine: boolean }> {
    this.#types ??= readBlobTypes(join(this.dir, BLOB_TYPES));
    return this.#types;
  }

  async readBlob(cid: string): Promise<StoredBlob | undefined> {
    const path = join(this.dir, 'blobs', safeCid(cid));
    const gone = async (err: unknown): Promise<undefined> => {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
      (await this.#storedBlobs()).delete(cid);
      return undefined;
    };
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      return gone(err);
    }
    return {
      size,
      // Small blobs are read whole (one read, sent with a plain Content-Length); large ones are
      // a file-backed Blob that streams from disk as it is sent.
      read: async () => {
        try {
          return size <= READ_WHOLE_BYTES ? await readFile(path) : await openAsBlob(path);
        } catch (err) {
          // openAsBlob reports a missing file as an invalid argument, not ENOENT: look again.
          const missing = await stat(path).then(
            () => undefined,
            (statError: unknown) => statError,
          );
          if (missing === undefined) throw err;
          return gone(missing);
        }
      },
    };
  }

  #storedBlobs(): Promise<Set<string>> {
    this.#stored ??= this.blobCids().then((names) => new Set(names));
    return this.#stored;
  }

  async writePreferences(preferences: unknown[]): Promise<void> {
    const tmp = this.#tmpPath('preferences.json');
    await writeFile(tmp, `${JSON.stringify({ preferences }, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, join(this.dir, 'preferences.json'));
  }

  async blobsCompleteAt(): Promise<string | undefined> {
    return (await this.#readManifest())?.blobsCompleteAt;
  }

  async markBlobsComplete(rev: string): Promise<void> {
    await this.#writeManifest({ ...((await this.#readManifest()) ?? { did: this.did }), blobsCompleteAt: rev });
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

const READ_WHOLE_BYTES = 4 * 1024 * 1024;
const BLOB_TYPES = 'blob-types.jsonl';

/**
 * The recorded content types, the last line for a CID winning. Lines that do not parse (cut by a
 * kill, or damaged) or hold something that is not a CID and a content type are skipped, as is a
 * file that cannot be read at all: a blob without a type is fetched again, never sent wrongly.
 */
async function readBlobTypes(path: string): Promise<{ byCid: Map<string, string>; cutLine: boolean }> {
  const byCid = new Map<string, string>();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return { byCid, cutLine: false };
  }
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const entry = JSON.parse(line) as { cid?: unknown; type?: unknown };
      if (typeof entry.cid === 'string' && isSafeCid(entry.cid) && isContentType(entry.type)) {
        byCid.set(entry.cid, entry.type);
      }
    } catch {
      // A cut or damaged line: that blob's type is unknown.
    }
  }
  return { byCid, cutLine: text.length > 0 && !text.endsWith('\n') };
}

/** A value that can go into a Content-Type header as it is: printable ASCII, no line breaks. */
function isContentType(value: unknown): value is string {
  return typeof value === 'string' && /^[\x21-\x7e][\x20-\x7e]{0,254}$/.test(value);
}

function blobCorrupted(cid: string): MigrationError {
  return new MigrationError('BlobCorrupted', `blob ${cid} arrived with different bytes`, 'It is fetched again.');
}

/** CIDs are base32 lower-case; anything else in a file name would be a path trick. */
function isSafeCid(cid: string): boolean {
  return /^[a-z2-7]+$/.test(cid);
}

function safeCid(cid: string): string {
  if (!isSafeCid(cid)) {
    throw new MigrationError('InvalidCid', `not a CID the backup can store: "${cid}"`, 'Report this server answer.');
  }
  return cid;
}

export { type BackupReport, verifyBackup } from './backup-check.node.ts';
