/**
 * One writer per repository at a time. A commit is computed from the current root and signing
 * is asynchronous, so two writers interleaving across an await would both build on the same
 * root; the lock chains them instead. Reads take no lock: SQLite (WAL) gives each statement a
 * consistent snapshot, and the root row changes in the same transaction as its blocks.
 */
export class WriteLocks {
  private readonly locks = new Map<string, Promise<unknown>>();

  /** True while a writer holds or waits for `did`'s lock (its store must stay open). */
  busy(did: string): boolean {
    return this.locks.has(did);
  }

  /** Runs `fn` with the account's write lock held. */
  async run<T>(did: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(did) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const chained = previous.then(() => mine);
    this.locks.set(did, chained);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(did) === chained) this.locks.delete(did);
    }
  }
}
