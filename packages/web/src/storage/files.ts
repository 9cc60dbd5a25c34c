/**
 * A tiny file store for the wizard's journal and backup, with two homes: the origin private file
 * system (OPFS), where the browser has one, else IndexedDB. Both make a write visible only once it
 * is whole, so a tab closed mid-write never leaves a truncated file a later visit would trust.
 */

export type StoreKind = 'opfs' | 'indexeddb';

export type FileBody = Blob | Uint8Array | string | ReadableStream<Uint8Array>;

export interface WriteOptions {
  inPlace?: boolean;
}

export interface FileStore {
  readonly kind: StoreKind;
  /** The file's contents as a Blob that reads from storage, or undefined when there is none. */
  read(path: string): Promise<Blob | undefined>;
  /**
   * Writes a whole file. `beforeCommit` runs once every byte arrived and may throw to store
   * nothing (a blob that does not hash to its CID). With `inPlace`, a write cut off by a closed
   * tab may leave an empty or partial file under the name: for callers that record each finished
   * file elsewhere and trust only those, which saves a rename per file.
   */
  write(path: string, body: FileBody, beforeCommit?: () => void, options?: WriteOptions): Promise<void>;
  /** The names directly inside `dir`. */
  list(dir: string): Promise<string[]>;
  remove(path: string): Promise<void>;
}

function split(path: string): { dirs: string[]; name: string } {
  const parts = path.split('/').filter(Boolean);
  return { dirs: parts.slice(0, -1), name: parts.at(-1)! };
}

const TMP = '.partial';

/**
 * OPFS, from the page itself: createWritable commits on close, and a partial name is moved in
 * place. Directory handles are kept once found: every lookup is a round trip to the browser's
 * storage process, and a blob's write would otherwise walk its folders each time.
 */
export class OpfsStore implements FileStore {
  readonly kind = 'opfs';
  readonly #root: FileSystemDirectoryHandle;
  readonly #dirs = new Map<string, Promise<FileSystemDirectoryHandle>>();

  constructor(root: FileSystemDirectoryHandle) {
    this.#root = root;
  }

  static async open(): Promise<OpfsStore | undefined> {
    try {
      const root = await navigator.storage.getDirectory();
      // Writing from the page's own thread needs createWritable, which some browsers keep to workers.
      const probe = await root.getFileHandle('.probe', { create: true });
      if (typeof probe.createWritable !== 'function') return undefined;
      const writable = await probe.createWritable();
      await writable.close();
      await root.removeEntry('.probe');
      return new OpfsStore(root);
    } catch {
      return undefined;
    }
  }

  async #dir(dirs: string[], create: boolean): Promise<FileSystemDirectoryHandle | undefined> {
    let dir = this.#root;
    for (let i = 0; i < dirs.length; i++) {
      const key = dirs.slice(0, i + 1).join('/');
      let found = this.#dirs.get(key);
      if (!found) {
        found = dir.getDirectoryHandle(dirs[i]!, { create });
        this.#dirs.set(key, found);
        // A folder that is not there (yet) is looked up again next time.
        found.catch(() => this.#dirs.delete(key));
      }
      try {
        dir = await found;
      } catch {
        return undefined;
      }
    }
    return dir;
  }

  async read(path: string): Promise<Blob | undefined> {
    const { dirs, name } = split(path);
    const dir = await this.#dir(dirs, false);
    if (!dir) return undefined;
    try {
      return await (await dir.getFileHandle(name)).getFile();
    } catch {
      return undefined;
    }
  }

  async write(path: string, body: FileBody, beforeCommit?: () => void, options: WriteOptions = {}): Promise<void> {
    const { dirs, name } = split(path);
    const dir = await this.#dir(dirs, true);
    if (!dir) throw new Error(`the browser refused to create the folder for ${path}`);
    const canMove = !options.inPlace && 'move' in FileSystemFileHandle.prototype;
    const target = await dir.getFileHandle(canMove ? name + TMP : name, { create: true });
    const writable = await target.createWritable();
    try {
      if (body instanceof ReadableStream) await body.pipeTo(writable, { preventClose: true });
      else await writable.write(body as Blob | string | Uint8Array<ArrayBuffer>);
      beforeCommit?.();
    } catch (err) {
      await writable.abort().catch(() => {});
      if (canMove || options.inPlace) await dir.removeEntry(canMove ? name + TMP : name).catch(() => {});
      throw err;
    }
    await writable.close();
    if (canMove) {
      await dir.removeEntry(name).catch(() => {});
      await (target as FileSystemFileHandle & { move(d: FileSystemDirectoryHandle, n: string): Promise<void> }).move(
        dir,
        name,
      );
    }
  }

  async list(path: string): Promise<string[]> {
    const dir = await this.#dir(path.split('/').filter(Boolean), false);
    if (!dir) return [];
    const names: string[] = [];
    for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) {
      if (!name.endsWith(TMP)) names.push(name);
    }
    return names;
  }

  async remove(path: string): Promise<void> {
    const { dirs, name } = split(path);
    const dir = await this.#dir(dirs, false);
    const gone = [...dirs, name].join('/');
    for (const key of this.#dirs.keys()) if (key === gone || key.startsWith(`${gone}/`)) this.#dirs.delete(key);
    await dir?.removeEntry(name, { recursive: true }).catch(() => {});
  }
}

/** IndexedDB: one object store of Blobs keyed by path; a put is atomic by itself. */
export class IdbStore implements FileStore {
  readonly kind = 'indexeddb';
  readonly #db: IDBDatabase;

  constructor(db: IDBDatabase) {
    this.#db = db;
  }

  static async open(name = 'portage-wizard'): Promise<IdbStore | undefined> {
    if (typeof indexedDB === 'undefined') return undefined;
    try {
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const req = indexedDB.open(name, 1);
        req.onupgradeneeded = () => req.result.createObjectStore('files');
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
      return new IdbStore(db);
    } catch {
      return undefined;
    }
  }

  #request<T>(mode: IDBTransactionMode, run: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      const tx = this.#db.transaction('files', mode);
      const req = run(tx.objectStore('files'));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('the browser refused to store the file'));
    });
  }

  async read(path: string): Promise<Blob | undefined> {
    const value = await this.#request('readonly', (s) => s.get(path) as IDBRequest<Blob | undefined>);
    return value instanceof Blob ? value : undefined;
  }

  async write(path: string, body: FileBody, beforeCommit?: () => void): Promise<void> {
    // A put is whole or nothing, so `inPlace` changes nothing here.
    const blob =
      body instanceof Blob
        ? body
        : body instanceof ReadableStream
          ? await new Response(body).blob()
          : new Blob([body as string | Uint8Array<ArrayBuffer>]);
    beforeCommit?.();
    await this.#request('readwrite', (s) => s.put(blob, path));
  }

  async list(dir: string): Promise<string[]> {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    const keys = await this.#request('readonly', (s) => s.getAllKeys(IDBKeyRange.bound(prefix, `${prefix}\uffff`)));
    return keys
      .map(String)
      .map((k) => k.slice(prefix.length))
      .filter((k) => !k.includes('/'));
  }

  async remove(path: string): Promise<void> {
    await this.#request('readwrite', (s) => s.delete(IDBKeyRange.bound(path, `${path}\uffff`)));
  }
}
