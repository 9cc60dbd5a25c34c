/**
 * App passwords: named `xxxx-xxxx-xxxx-xxxx` passwords an account gives to apps, hashed with
 * scrypt like the account password, optionally privileged (direct messages). The sessions
 * signed in with one end with it; AccountManager revokes both in one transaction.
 */
import { InvalidRequest } from '../xrpc/errors.ts';
import { generateAppPassword, hashPassword, verifyPassword } from './passwords.ts';
import { type AccountTables, isoTime, isUniqueViolation } from './tables.ts';

export interface AppPasswordInfo {
  name: string;
  createdAt: string;
  privileged: boolean;
}

/** Longest app-password name, as in the lexicon of createAppPassword. */
const APP_PASSWORD_NAME_MAX = 100;

interface AppPasswordRow {
  name: string;
  created_at: string;
  privileged: number;
}

function toInfo(row: AppPasswordRow): AppPasswordInfo {
  return { name: row.name, createdAt: row.created_at, privileged: row.privileged === 1 };
}

export class AppPasswords {
  readonly #t: AccountTables;

  constructor(tables: AccountTables) {
    this.#t = tables;
  }

  async create(did: string, name: string, privileged: boolean): Promise<AppPasswordInfo & { password: string }> {
    const trimmed = name.trim();
    if (trimmed === '') throw InvalidRequest('App password name must not be empty');
    if (trimmed.length > APP_PASSWORD_NAME_MAX) {
      throw InvalidRequest(`App password name must not be longer than ${APP_PASSWORD_NAME_MAX} characters`);
    }
    const password = generateAppPassword();
    const passwordHash = await hashPassword(password);
    const createdAt = isoTime(this.#t.now());
    try {
      this.#t
        .prepared(
          'INSERT INTO app_password (did, name, password_scrypt, privileged, created_at) VALUES (?, ?, ?, ?, ?)',
        )
        .run(did, trimmed, passwordHash, privileged ? 1 : 0, createdAt);
    } catch (err) {
      if (isUniqueViolation(err)) {
        throw InvalidRequest(`An app password named "${trimmed}" already exists`, 'DuplicateAppPassword');
      }
      throw err;
    }
    return { name: trimmed, password, createdAt, privileged };
  }

  list(did: string): AppPasswordInfo[] {
    return this.#t
      .prepared<[string], AppPasswordRow>(
        'SELECT name, created_at, privileged FROM app_password WHERE did = ? ORDER BY created_at DESC, name',
      )
      .all(did)
      .map(toInfo);
  }

  get(did: string, name: string): AppPasswordInfo | null {
    const row = this.#t
      .prepared<[string, string], AppPasswordRow>(
        'SELECT name, created_at, privileged FROM app_password WHERE did = ? AND name = ?',
      )
      .get(did, name);
    return row ? toInfo(row) : null;
  }

  /** The app password `password` is, among the account's, or null. */
  async verify(did: string, password: string): Promise<AppPasswordInfo | null> {
    const rows = this.#t
      .prepared<[string], AppPasswordRow & { password_scrypt: string }>(
        'SELECT name, password_scrypt, created_at, privileged FROM app_password WHERE did = ?',
      )
      .all(did);
    for (const row of rows) {
      if (await verifyPassword(password, row.password_scrypt)) return toInfo(row);
    }
    return null;
  }

  /** Deletes the app password (its sessions are the caller's to end, in the same transaction). */
  delete(did: string, name: string): void {
    this.#t.prepared('DELETE FROM app_password WHERE did = ? AND name = ?').run(did, name);
  }
}
