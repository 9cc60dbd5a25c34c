/**
 * Where the engine keeps its journal between runs: a tiny key -> text store. Node passes a
 * directory (storage.node.ts); the browser wizard passes its own. Writes must be atomic (a crash
 * leaves the old or the new value, never half of one), because a kill can land at any moment.
 */
export interface MigrationStorage {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  /**
   * Takes the lock `name` for this run, or says who holds it: two runs on one account with one
   * journal would undo each other's bookkeeping. Held until released, and given up by itself
   * when its holder dies (a killed run must not block the next one). Node: a lock file created
   * exclusively, holding the pid (storage.node.ts). A browser storage can use the Web Locks API
   * (`navigator.locks.request(name, { ifAvailable: true }, ...)`), which spans every tab of the
   * origin and is freed when the tab closes. Without `lock`, runs are not guarded.
   */
  lock?(name: string): Promise<LockAttempt>;
}

export type LockAttempt =
  | { acquired: true; release(): Promise<void> }
  /** `holder` names the other run ("pid 1234"); `location` is where the lock lives (a file to remove). */
  | { acquired: false; holder: string; location: string };

/** Keeps values in memory: for tests and for callers that do not want resumability. */
export class MemoryStorage implements MigrationStorage {
  readonly values = new Map<string, string>();
  readonly #locks = new Set<string>();
  async get(key: string): Promise<string | undefined> {
    return this.values.get(key);
  }
  async set(key: string, value: string): Promise<void> {
    this.values.set(key, value);
  }
  /** Guards runs sharing this instance (it lives and dies with them, so it never goes stale). */
  async lock(name: string): Promise<LockAttempt> {
    if (this.#locks.has(name)) return { acquired: false, holder: 'another run in this program', location: 'memory' };
    this.#locks.add(name);
    return { acquired: true, release: async () => void this.#locks.delete(name) };
  }
}
