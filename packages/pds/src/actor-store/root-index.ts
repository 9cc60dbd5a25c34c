/**
 * Every repository's current root in one small database, so listRepos pages through all
 * accounts without opening each account's store. Written right after each commit; a crash in
 * between leaves it one commit behind until the account's store is next opened.
 */
import { formatCid, parseCid } from '@portage/atproto/cid';
import type { Statement } from 'better-sqlite3';
import { openRootIndex, type SqliteDb } from './db.ts';
import type { RepoRoot } from './types.ts';

export class RootIndex {
  private readonly db: SqliteDb;
  private readonly upsert: Statement<unknown[], unknown>;
  private readonly select: Statement<unknown[], unknown>;

  constructor(path: string) {
    this.db = openRootIndex(path);
    this.upsert = this.db.prepare(
      `INSERT INTO repo_root (did, cid, rev) VALUES (?, ?, ?)
       ON CONFLICT (did) DO UPDATE SET cid = excluded.cid, rev = excluded.rev`,
    );
    this.select = this.db.prepare('SELECT cid, rev FROM repo_root WHERE did = ?');
  }

  set(did: string, root: RepoRoot): void {
    this.upsert.run(did, formatCid(root.cid), root.rev);
  }

  get(did: string): RepoRoot | undefined {
    const row = this.select.get(did) as { cid: string; rev: string } | undefined;
    return row ? { cid: parseCid(row.cid), rev: row.rev } : undefined;
  }

  delete(did: string): void {
    this.db.prepare('DELETE FROM repo_root WHERE did = ?').run(did);
  }

  close(): void {
    this.db.close();
  }
}
