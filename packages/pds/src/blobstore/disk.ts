/**
 * Blobs as files: `<root>/<did>/<cid>` for permanent blobs and `<tempRoot>/<did>/<key>` for
 * uploads not yet referenced by a committed record. With both on one filesystem (the default
 * puts the temporary area inside the root) making a blob permanent is an atomic rename; across
 * filesystems it falls back to copy and delete.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, type FileHandle, mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Cid, CODEC_RAW, cidFromDigest, formatCid } from '@portage/atproto/cid';
import { folderBytes } from '../metrics/folder-bytes.ts';
import { type BlobReadResult, type BlobStore, BlobTooLargeError, type StoredTempBlob } from './blobstore.ts';
import { SNIFF_LENGTH, sniffMimeType } from './mime-sniff.ts';

/** DIDs contain ':' (and did:web may contain '%'); keep directory names portable. */
function didDirName(did: string): string {
  return did.replace(/[^a-zA-Z0-9._-]/g, '_');
}

/** The DID a directory name stands for (did:plc and did:web names are the ones that occur). */
function didFromDirName(name: string): string | undefined {
  const match = /^did_(plc|web)_(.+)$/.exec(name);
  if (!match) return undefined;
  return `did:${match[1]}:${match[1] === 'web' ? match[2]!.replace(/_3A/g, '%3A') : match[2]}`;
}

/** Upload bytes waiting in memory for the file before the upload stops reading (per upload). */
const MAX_UNWRITTEN_BYTES = 1024 * 1024;

/**
 * Writes an upload to its file while the rest is still arriving, with one write in flight at a
 * time: chunks that arrive meanwhile go together in the next writev. Each file operation is a
 * round trip to the thread pool and network chunks are small (~64 KB), so this keeps round
 * trips few without waiting for the whole body. The caller waits only when more than
 * MAX_UNWRITTEN_BYTES are queued, which bounds memory.
 */
class FileWriter {
  readonly #file: FileHandle;
  #queued: Uint8Array[] = [];
  #queuedBytes = 0;
  #writing: Promise<void> | undefined;
  #error: unknown;

  constructor(file: FileHandle) {
    this.#file = file;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    this.#queued.push(chunk);
    this.#queuedBytes += chunk.length;
    this.#writing ??= this.#writeQueued();
    if (this.#queuedBytes >= MAX_UNWRITTEN_BYTES) await this.#writing;
  }

  async #writeQueued(): Promise<void> {
    try {
      const file = this.#file;
      while (this.#queued.length > 0) {
        const chunks = this.#queued;
        this.#queued = [];
        this.#queuedBytes = 0;
        await file.writev(chunks);
      }
    } catch (err) {
      this.#error = err;
    } finally {
      this.#writing = undefined;
    }
  }

  /**
   * Writes what is left and closes the file, without fsync, like the actor stores' SQLite
   * setting: an acknowledged upload is in the OS page cache, so it survives the process being
   * killed; a power cut may lose the last moments of uploads.
   */
  async finish(): Promise<void> {
    if (this.#queued.length > 0) this.#writing ??= this.#writeQueued();
    await this.#writing;
    if (this.#error !== undefined) throw this.#error;
    await this.#file.close();
  }

  /** Stops writing and closes the file (the caller removes it). */
  async abort(): Promise<void> {
    this.#queued = [];
    await this.#writing;
    await this.#file.close().catch(() => {});
  }
}

export class DiskBlobStore implements BlobStore {
  readonly root: string;
  readonly tempRoot: string;

  constructor(root: string, tempRoot = join(root, 'tmp')) {
    this.root = root;
    this.tempRoot = tempRoot;
  }

  /** Writes and removes a probe file in both folders (made if missing, as the first upload would). */
  async checkWritable(): Promise<void> {
    for (const dir of [this.root, this.tempRoot]) {
      const probe = join(dir, `.health-${randomBytes(6).toString('hex')}`);
      try {
        await mkdir(dir, { recursive: true });
        await writeFile(probe, '');
      } finally {
        await rm(probe, { force: true });
      }
    }
  }

  private tempDir(did: string): string {
    return join(this.tempRoot, didDirName(did));
  }

  private permanentDir(did: string): string {
    return join(this.root, didDirName(did));
  }

  private permanentPath(did: string, cid: Cid): string {
    return join(this.permanentDir(did), formatCid(cid));
  }

  private tempPath(did: string, tempKey: string): string {
    if (!/^[a-f0-9]{32}$/.test(tempKey)) throw new Error('malformed temporary blob key');
    return join(this.tempDir(did), tempKey);
  }

  async putTemp(did: string, body: AsyncIterable<Uint8Array>, maxSize: number): Promise<StoredTempBlob> {
    const tempKey = randomBytes(16).toString('hex');
    const path = this.tempPath(did, tempKey);
    const hash = createHash('sha256');
    const head = new Uint8Array(SNIFF_LENGTH);
    let size = 0;
    // Opened before reading: a disk that cannot take the upload fails it before the client
    // has sent it all.
    const writer = new FileWriter(await this.openTempFile(did, path));
    try {
      for await (const chunk of body) {
        if (size + chunk.length > maxSize) throw new BlobTooLargeError(maxSize);
        if (size < SNIFF_LENGTH) head.set(chunk.subarray(0, SNIFF_LENGTH - size), size);
        size += chunk.length;
        hash.update(chunk);
        await writer.write(chunk);
      }
      await writer.finish();
    } catch (err) {
      await writer.abort();
      await rm(path, { force: true });
      throw err;
    }
    const cid = cidFromDigest(CODEC_RAW, new Uint8Array(hash.digest()));
    return { tempKey, cid, size, sniffedMimeType: sniffMimeType(head.subarray(0, Math.min(size, SNIFF_LENGTH))) };
  }

  /** Creates the upload's file, and the account's temporary directory the first time it is missing. */
  private openTempFile(did: string, path: string): Promise<FileHandle> {
    return creatingDirWhenMissing(this.tempDir(did), () => open(path, 'wx', 0o600));
  }

  /**
   * One rename in the common case: a blob already permanent under the same CID has the same
   * bytes, so replacing it is harmless, and the account's directory is created only when the
   * rename says it is missing. Callers hold the account's write lock here, so every file
   * operation saved shortens the queue of uploads behind it.
   */
  async makePermanent(did: string, tempKey: string, cid: Cid): Promise<void> {
    const target = this.permanentPath(did, cid);
    const source = this.tempPath(did, tempKey);
    try {
      // ENOENT with the source present means the account's directory is missing.
      await creatingDirWhenMissing(
        this.permanentDir(did),
        () => rename(source, target),
        () => exists(source),
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && (await exists(target))) return; // made permanent by an earlier call
      if (code !== 'EXDEV') throw err;
      // Copy to a side name first so a crash never leaves a truncated file under the CID's name.
      const partial = `${target}.partial`;
      await copyFile(source, partial);
      await rename(partial, target);
      await rm(source, { force: true });
    }
  }

  async deleteTemp(did: string, tempKey: string): Promise<void> {
    await rm(this.tempPath(did, tempKey), { force: true });
  }

  async hasPermanent(did: string, cid: Cid): Promise<boolean> {
    return exists(this.permanentPath(did, cid));
  }

  async read(did: string, cid: Cid): Promise<BlobReadResult | undefined> {
    const path = this.permanentPath(did, cid);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      return undefined;
    }
    return { size, stream: createReadStream(path, { highWaterMark: 256 * 1024 }) };
  }

  async delete(did: string, cids: Cid[]): Promise<void> {
    for (const cid of cids) await rm(this.permanentPath(did, cid), { force: true });
  }

  async deleteAll(did: string): Promise<void> {
    await rm(this.permanentDir(did), { recursive: true, force: true });
    await rm(this.tempDir(did), { recursive: true, force: true });
  }

  async storedBytes(): Promise<number> {
    return folderBytes(this.root);
  }

  async *listPermanent(): AsyncGenerator<{ did: string; cid: string; size: number }> {
    const dirs = await readdir(this.root).catch(() => [] as string[]);
    for (const dir of dirs) {
      const did = didFromDirName(dir);
      if (!did) continue;
      for (const name of await readdir(join(this.root, dir)).catch(() => [] as string[])) {
        if (name.endsWith('.partial')) continue;
        const info = await stat(join(this.root, dir, name)).catch(() => undefined);
        if (info?.isFile()) yield { did, cid: name, size: info.size };
      }
    }
  }

  async sweepTemp(maxAgeMs: number): Promise<number> {
    const tempRoot = this.tempRoot;
    const cutoff = Date.now() - maxAgeMs;
    let removed = 0;
    let didDirs: string[];
    try {
      didDirs = await readdir(tempRoot);
    } catch {
      return 0;
    }
    for (const dir of didDirs) {
      for (const name of await readdir(join(tempRoot, dir)).catch(() => [] as string[])) {
        const path = join(tempRoot, dir, name);
        const info = await stat(path).catch(() => undefined);
        if (info && info.mtimeMs < cutoff) {
          await rm(path, { force: true });
          removed++;
        }
      }
    }
    return removed;
  }
}

/**
 * Runs `op` (a file operation inside `dir`), and once more after creating `dir` when it failed
 * with ENOENT for want of it: the directory is made the first time it is needed, not checked for
 * on every operation. `dirWasMissing` tells, when ENOENT could have another cause.
 */
async function creatingDirWhenMissing<T>(
  dir: string,
  op: () => Promise<T>,
  dirWasMissing: () => Promise<boolean> = async () => true,
): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !(await dirWasMissing())) throw err;
    await mkdir(dir, { recursive: true });
    return op();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
