/**
 * Access to one account's repository database for the whole-repository operations of a
 * migration (replacing the repository with an imported one, re-signing the head commit,
 * counting what checkAccountStatus reports). Ordinary record writes go through the actor
 * store's commit path; these operations do not fit it, because they replace or re-sign
 * rather than apply record writes.
 *
 * The access runs on its own SQLite connection to the account's file (WAL lets it coexist
 * with the actor store's connection; busy_timeout orders the writers), serialised per DID
 * here. It only ever runs on deactivated accounts, where the actor store accepts no record
 * writes, so the two never race on the repository root. Blocks are content-addressed, so the
 * actor store's block cache cannot serve wrong bytes afterwards; the shared root index, which
 * listRepos reads, is updated here after every write.
 */
import { join } from 'node:path';
import type { ActorStore } from '../actor-store/actor-store.ts';
import { openActorDb, openRootIndex, type SqliteDb } from '../actor-store/db.ts';

/** File name of an account's repository database inside its actor-store directory. */
const ACCOUNT_DB_FILE = 'store.sqlite';
const ROOT_INDEX_FILE = 'repo-roots.sqlite';

export class RepoDbAccess {
  readonly #actorStore: ActorStore;
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(actorStore: ActorStore) {
    this.#actorStore = actorStore;
  }

  /** Runs `fn` on the account's database, one writer per DID at a time; re-indexes the root after. */
  async write<T>(did: string, fn: (db: SqliteDb) => T | Promise<T>): Promise<T> {
    const previous = this.#locks.get(did) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const chained = previous.then(() => mine);
    this.#locks.set(did, chained);
    await previous.catch(() => {});
    const db = this.#open(did);
    try {
      const result = await fn(db);
      this.#reindexRoot(did, db);
      return result;
    } finally {
      db.close();
      release();
      if (this.#locks.get(did) === chained) this.#locks.delete(did);
    }
  }

  /** Runs a read on the account's database (a consistent snapshot per statement). */
  read<T>(did: string, fn: (db: SqliteDb) => T): T {
    const db = this.#open(did);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }

  #open(did: string): SqliteDb {
    return openActorDb(join(this.#actorStore.accountDirectory(did), ACCOUNT_DB_FILE));
  }

  #reindexRoot(did: string, db: SqliteDb): void {
    const root = db.prepare('SELECT cid, rev FROM repo_root WHERE did = ?').get(did) as
      { cid: string; rev: string } | undefined;
    if (!root) return;
    const index = openRootIndex(join(this.#actorStore.directory, ROOT_INDEX_FILE));
    try {
      index
        .prepare(
          `INSERT INTO repo_root (did, cid, rev) VALUES (?, ?, ?)
           ON CONFLICT (did) DO UPDATE SET cid = excluded.cid, rev = excluded.rev`,
        )
        .run(did, root.cid, root.rev);
    } finally {
      index.close();
    }
  }
}
