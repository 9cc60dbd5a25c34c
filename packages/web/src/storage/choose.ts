/**
 * Picks where this browser keeps the journal and the backup: OPFS, else IndexedDB, else the
 * journal alone in localStorage (no backup then: the move still works, straight from server to
 * server). Nothing secret goes into any of them: no password, token or key.
 */
import type { BackupSink } from '@portage/migrate';
import { backupFolder, backupName, BrowserBackup } from './backup.ts';
import { downloadRepoEarly } from './early-repo.ts';
import { type FileStore, IdbStore, OpfsStore, type StoreKind } from './files.ts';
import { FileStoreJournal, LocalStorageJournal, type WizardStorage } from './journal.ts';

export interface BrowserStorage {
  kind: StoreKind | 'localstorage';
  journal: WizardStorage;
  /** Opens the backup for a DID; undefined when only localStorage is available. */
  openBackup: ((did: string) => Promise<BackupSink>) | undefined;
  /**
   * Starts downloading the account's repository into its backup (see early-repo.ts), once per
   * DID; a backup opened later waits for it before it says which commit it holds.
   */
  downloadRepoEarly(did: string, pds: string): void;
  /** The stored backup of a DID as a tar of `portage backup`'s folder, if there is one. */
  exportBackup(did: string): Promise<Blob | undefined>;
  /** Deletes the backup of a DID from this browser (the journal stays: it is tiny and has no data). */
  deleteBackup(did: string): Promise<void>;
  /** Bytes used and still free for this site, when the browser says. */
  estimate(): Promise<{ usage: number; free: number } | undefined>;
  /** Asks the browser not to evict the backup when space runs short. */
  persist(): Promise<boolean>;
  describe(): string;
}

export const STORAGE_NAMES: Record<BrowserStorage['kind'], string> = {
  opfs: "the browser's private file system (OPFS)",
  indexeddb: "the browser's database (IndexedDB)",
  localstorage: "the browser's local storage (progress only, no backup)",
};

export async function openBrowserStorage(): Promise<BrowserStorage> {
  let files: FileStore | undefined = await OpfsStore.open();
  files ??= await IdbStore.open();
  const kind = files?.kind ?? 'localstorage';
  const earlyRepos = new Map<string, Promise<void>>();
  return {
    kind,
    journal: files ? new FileStoreJournal(files) : new LocalStorageJournal(),
    openBackup: files ? (did) => new BrowserBackup(files, did, earlyRepos.get(did)).open() : undefined,
    downloadRepoEarly(did, pds) {
      if (!files || earlyRepos.has(did)) return;
      earlyRepos.set(
        did,
        new BrowserBackup(files, did)
          .open()
          .then((backup) => downloadRepoEarly(backup, pds, did))
          .catch(() => {}),
      );
    },
    deleteBackup: async (did) => {
      await files?.remove(backupFolder(did));
    },
    exportBackup: async (did) => (files ? new BrowserBackup(files, did).archive(backupName(did)) : undefined),
    async estimate() {
      try {
        const e = await navigator.storage?.estimate?.();
        if (!e || e.quota === undefined) return undefined;
        return { usage: e.usage ?? 0, free: Math.max(0, e.quota - (e.usage ?? 0)) };
      } catch {
        return undefined;
      }
    },
    async persist() {
      try {
        return (await navigator.storage?.persist?.()) ?? false;
      } catch {
        return false;
      }
    },
    describe: () => STORAGE_NAMES[kind],
  };
}
