/**
 * The engine's journal in the browser (MigrationStorage): in the file store (OPFS or IndexedDB)
 * when there is one, else in localStorage, which holds only the journal (it is small and has no
 * room for a backup). One run per account across every tab of this origin: Web Locks, which the
 * browser frees by itself when a tab closes or crashes, so a closed tab never blocks the next visit.
 */
import type { LockAttempt, MigrationStorage } from '@portage/migrate';
import type { FileStore } from './files.ts';

const PREFIX = 'portage-wizard:';

/** Takes the lock through navigator.locks; without Web Locks (old browsers) runs are not guarded. */
async function webLock(name: string): Promise<LockAttempt> {
  if (typeof navigator === 'undefined' || !navigator.locks) return { acquired: true, release: async () => {} };
  return new Promise<LockAttempt>((resolveAttempt) => {
    void navigator.locks.request(`${PREFIX}${name}`, { ifAvailable: true }, (lock) => {
      if (!lock) {
        resolveAttempt({ acquired: false, holder: 'another tab or window', location: 'this browser' });
        return undefined;
      }
      return new Promise<void>((release) => resolveAttempt({ acquired: true, release: async () => release() }));
    });
  });
}

/** Whether a run on `name` is under way in some tab of this browser right now. */
export async function lockHeld(name: string): Promise<boolean> {
  if (typeof navigator === 'undefined' || !navigator.locks) return false;
  const state = await navigator.locks.query();
  return (state.held ?? []).some((l) => l.name === `${PREFIX}${name}`);
}

export class FileStoreJournal implements MigrationStorage {
  readonly #files: FileStore;
  constructor(files: FileStore) {
    this.#files = files;
  }
  async get(key: string): Promise<string | undefined> {
    return (await this.#files.read(`journal/${encodeURIComponent(key)}`))?.text();
  }
  async set(key: string, value: string): Promise<void> {
    await this.#files.write(`journal/${encodeURIComponent(key)}`, value);
  }
  async keys(): Promise<string[]> {
    return (await this.#files.list('journal')).map((k) => decodeURIComponent(k));
  }
  lock(name: string): Promise<LockAttempt> {
    return webLock(name);
  }
}

export class LocalStorageJournal implements MigrationStorage {
  async get(key: string): Promise<string | undefined> {
    return localStorage.getItem(`${PREFIX}${key}`) ?? undefined;
  }
  async set(key: string, value: string): Promise<void> {
    // setItem replaces the value whole or throws: never half a journal.
    localStorage.setItem(`${PREFIX}${key}`, value);
  }
  async keys(): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (k?.startsWith(PREFIX)) out.push(k.slice(PREFIX.length));
    }
    return out;
  }
  lock(name: string): Promise<LockAttempt> {
    return webLock(name);
  }
}

export type WizardStorage = FileStoreJournal | LocalStorageJournal;
