/**
 * Where the engine keeps its journal between runs: a tiny key -> text store. Node passes a
 * directory (storage.node.ts); the browser wizard passes its own. Writes must be atomic (a crash
 * leaves the old or the new value, never half of one), because a kill can land at any moment.
 */
export interface MigrationStorage {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
}

/** Keeps values in memory: for tests and for callers that do not want resumability. */
export class MemoryStorage implements MigrationStorage {
  readonly values = new Map<string, string>();
  async get(key: string): Promise<string | undefined> {
    return this.values.get(key);
  }
  async set(key: string, value: string): Promise<void> {
    this.values.set(key, value);
  }
}
