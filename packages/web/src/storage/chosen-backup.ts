/**
 * A backup the user chose from disk for a restore: the .tar the wizard's "Download the backup"
 * writes (or `tar` of a `portage backup` folder), or the folder itself. Nothing is copied: the
 * tar is indexed by reading its 512-byte headers, and each file is a slice of the chosen File,
 * read from disk when the check or the upload needs it. It serves both the backup check
 * (BackupFiles) and the restore (RestoreSource).
 */
import type { BackupFiles } from '@portage/migrate/backup-check';
import type { StoredBlob } from '@portage/migrate';
import type { RestoreSource } from '@portage/migrate/restore/restore';

const BLOCK = 512;
const decoder = new TextDecoder();

/** Why a chosen file is not a backup, as a sentence for the page. */
export class ChosenBackupError extends Error {}

export class ChosenBackup implements BackupFiles, RestoreSource {
  readonly where: string;
  readonly dir: string;
  readonly #files: Map<string, Blob>;
  #did = '';
  #types: Map<string, string> | undefined;

  private constructor(where: string, files: Map<string, Blob>) {
    this.where = where;
    this.dir = where;
    this.#files = files;
  }

  /** The account the backup is of, once `open` read its manifest. */
  get did(): string {
    return this.#did;
  }

  /** The files of a .tar, under the folder that holds manifest.json. */
  static async fromTar(file: File): Promise<ChosenBackup> {
    return ChosenBackup.#rooted(file.name, await tarEntries(file, file.name));
  }

  /** The files of a chosen folder (an <input webkitdirectory>), under the folder that holds manifest.json. */
  static fromFolder(files: FileList | File[]): ChosenBackup {
    const entries = new Map<string, Blob>();
    let name = 'the chosen folder';
    for (const file of Array.from(files)) {
      const path = file.webkitRelativePath || file.name;
      entries.set(path, file);
      name = path.split('/')[0] || name;
    }
    return ChosenBackup.#rooted(name, entries);
  }

  static #rooted(where: string, entries: Map<string, Blob>): ChosenBackup {
    const manifests = [...entries.keys()].filter((p) => p === 'manifest.json' || p.endsWith('/manifest.json'));
    manifests.sort((a, b) => a.length - b.length);
    const manifest = manifests[0];
    if (manifest === undefined) {
      throw new ChosenBackupError(`${where} is not a Portage backup: it holds no manifest.json.`);
    }
    const prefix = manifest.slice(0, -'manifest.json'.length);
    const files = new Map<string, Blob>();
    for (const [path, body] of entries) if (path.startsWith(prefix)) files.set(path.slice(prefix.length), body);
    return new ChosenBackup(where, files);
  }

  /** Reads the manifest: the DID the backup is of (its DID document is not in it). */
  async open(): Promise<string> {
    try {
      const manifest = JSON.parse(await this.#files.get('manifest.json')!.text()) as { did?: unknown };
      if (typeof manifest.did === 'string' && manifest.did.startsWith('did:')) this.#did = manifest.did;
    } catch {
      // Said below, in the same words as a manifest without a DID.
    }
    if (!this.#did)
      throw new ChosenBackupError(`${this.where} is not a Portage backup: its manifest names no account.`);
    return this.#did;
  }

  async read(path: string): Promise<ReadableStream<Uint8Array> | undefined> {
    return this.#files.get(path)?.stream() as ReadableStream<Uint8Array> | undefined;
  }

  async list(folder: string): Promise<string[]> {
    const prefix = `${folder}/`;
    return [...this.#files.keys()]
      .filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/') && p.length > prefix.length)
      .map((p) => p.slice(prefix.length));
  }

  async readRepo(): Promise<Blob | undefined> {
    const car = this.#files.get('repo.car');
    return car && new Blob([car], { type: 'application/vnd.ipld.car' });
  }

  async readBlob(cid: string): Promise<StoredBlob | undefined> {
    const body = this.#files.get(`blobs/${cid}`);
    return body && { size: body.size, read: async () => body };
  }

  async blobContentType(cid: string): Promise<string | undefined> {
    if (!this.#types) {
      this.#types = new Map();
      const text = (await this.#files.get('blob-types.jsonl')?.text()) ?? '';
      for (const line of text.split('\n')) {
        try {
          const entry = JSON.parse(line) as { cid?: unknown; type?: unknown };
          if (typeof entry.cid === 'string' && typeof entry.type === 'string') this.#types.set(entry.cid, entry.type);
        } catch {
          // A line cut short by an interrupted backup: that blob's type is guessed on upload.
        }
      }
    }
    return this.#types.get(cid);
  }

  async readPreferences(): Promise<unknown[] | undefined> {
    const body = this.#files.get('preferences.json');
    if (!body) return undefined;
    const saved = JSON.parse(await body.text()) as { preferences?: unknown };
    return Array.isArray(saved.preferences) ? saved.preferences : undefined;
  }
}

/**
 * The regular files of a tar (ustar, with the GNU long-name and pax path records `tar` writes for
 * long paths), each a slice of the file. Only headers are read.
 */
async function tarEntries(file: Blob, name: string): Promise<Map<string, Blob>> {
  const entries = new Map<string, Blob>();
  const notTar = () => new ChosenBackupError(`${name} is not a .tar file. Choose the backup the wizard downloaded.`);
  let at = 0;
  let longName: string | undefined;
  while (at + BLOCK <= file.size) {
    const h = new Uint8Array(await file.slice(at, at + BLOCK).arrayBuffer());
    if (h.every((b) => b === 0)) break;
    const field = (from: number, length: number) => {
      const bytes = h.subarray(from, from + length);
      const end = bytes.indexOf(0);
      return decoder.decode(end < 0 ? bytes : bytes.subarray(0, end));
    };
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
    if (sum !== parseInt(field(148, 8).trim(), 8)) throw notTar();
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(h[156] || 48);
    const bodyAt = at + BLOCK;
    at = bodyAt + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L') {
      longName = (await file.slice(bodyAt, bodyAt + size).text()).replace(/\0+$/, '');
      continue;
    }
    if (type === 'x') {
      const path = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(await file.slice(bodyAt, bodyAt + size).text());
      if (path) longName = path[1];
      continue;
    }
    // POSIX ustar keeps the start of long paths in a prefix field; GNU's own format has none there.
    const prefix = field(257, 6) === 'ustar' ? field(345, 155) : '';
    const path = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    if (type === '0' || type === '7') entries.set(path.replace(/^\.\//, ''), file.slice(bodyAt, bodyAt + size));
  }
  if (!entries.size) throw notTar();
  return entries;
}
