/**
 * What the modules of the account database share, handed to them by AccountManager, the
 * database's one owner: the connection, its prepared statements and the clock. A module may
 * write only its own tables; the account table is written by AccountManager alone, through the
 * path that empties its row cache.
 */
import type Database from 'better-sqlite3';
import type { AccountDb } from './db.ts';

export interface AccountTables {
  readonly db: AccountDb;
  /** The statement for `sql`, compiled once per database and reused. */
  prepared<Params extends unknown[] = unknown[], Row = unknown>(sql: string): Database.Statement<Params, Row>;
  /** Seconds since the epoch (injectable, so tests can move time). */
  now(): number;
}

/**
 * Statements prepared once and reused, keyed by their SQL: compiling the SQL again on every
 * call cost more than running it (getAccount sits on the path of every repo read and write).
 */
export class PreparedStatements {
  readonly #db: AccountDb;
  readonly #statements = new Map<string, Database.Statement<unknown[], unknown>>();

  constructor(db: AccountDb) {
    this.#db = db;
  }

  get<Params extends unknown[] = unknown[], Row = unknown>(sql: string): Database.Statement<Params, Row> {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement as unknown as Database.Statement<Params, Row>;
  }

  clear(): void {
    this.#statements.clear();
  }
}

export function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && 'code' in err && String(err.code).startsWith('SQLITE_CONSTRAINT');
}

/** `seconds` since the epoch as an ISO datetime, as the tables store times. */
export function isoTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}
