/**
 * The account database (one SQLite file, WAL): who the accounts are and how they log in.
 * Repositories live in the actor store; this file knows only identities, credentials,
 * sessions, invites, email tokens and preferences. Schema changes are numbered migrations
 * recorded in `PRAGMA user_version`, applied in one transaction at open.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type AccountDb = Database.Database;

const MIGRATIONS: string[] = [
  `
  CREATE TABLE account (
    did TEXT PRIMARY KEY,
    handle TEXT UNIQUE,
    email TEXT UNIQUE,
    email_confirmed_at TEXT,
    password_scrypt TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deactivated_at TEXT,
    takedown_ref TEXT,
    invites_disabled INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE TABLE refresh_token (
    id TEXT PRIMARY KEY,
    did TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    app_password_name TEXT,
    next_id TEXT
  ) STRICT;
  CREATE INDEX refresh_token_did ON refresh_token(did);
  CREATE TABLE app_password (
    did TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    name TEXT NOT NULL,
    password_scrypt TEXT NOT NULL,
    privileged INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    PRIMARY KEY (did, name)
  ) STRICT;
  CREATE TABLE invite_code (
    code TEXT PRIMARY KEY,
    available_uses INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    for_account TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
  ) STRICT;
  CREATE INDEX invite_code_for_account ON invite_code(for_account);
  CREATE TABLE invite_code_use (
    code TEXT NOT NULL REFERENCES invite_code(code),
    used_by TEXT NOT NULL,
    used_at TEXT NOT NULL,
    PRIMARY KEY (code, used_by)
  ) STRICT;
  CREATE TABLE email_token (
    purpose TEXT NOT NULL,
    did TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    token TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    PRIMARY KEY (purpose, did)
  ) STRICT;
  CREATE TABLE account_pref (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    did TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value_json TEXT NOT NULL
  ) STRICT;
  CREATE INDEX account_pref_did ON account_pref(did);
  `,
  // 2: when a deactivated account (one that migrated away) may be deleted, as the user asked.
  `
  ALTER TABLE account ADD COLUMN delete_after TEXT;
  `,
  // 3: sign-in asks for a code mailed to the account (email two-factor), when the user turned it on.
  `
  ALTER TABLE account ADD COLUMN email_auth_factor INTEGER NOT NULL DEFAULT 0;
  `,
  // 4: OAuth (oauth/store.ts): pushed authorization requests and their codes, token families
  // (one per sign-in of an app, its refresh token rotated), used refresh tokens (a replay
  // revokes the family), and the apps each account authorized with the scopes it granted.
  // Codes and refresh tokens are stored as SHA-256 hashes, never as issued.
  `
  CREATE TABLE oauth_request (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    parameters_json TEXT NOT NULL,
    dpop_jkt TEXT,
    expires_at INTEGER NOT NULL,
    did TEXT REFERENCES account(did) ON DELETE CASCADE,
    code_hash TEXT UNIQUE,
    code_expires_at INTEGER
  ) STRICT;
  CREATE TABLE oauth_token (
    id TEXT PRIMARY KEY,
    did TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    dpop_jkt TEXT NOT NULL,
    access_jti TEXT NOT NULL UNIQUE,
    refresh_hash TEXT NOT NULL UNIQUE,
    code_hash TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX oauth_token_did ON oauth_token(did, client_id);
  CREATE TABLE oauth_used_refresh (
    refresh_hash TEXT PRIMARY KEY,
    token_id TEXT NOT NULL REFERENCES oauth_token(id) ON DELETE CASCADE
  ) STRICT;
  CREATE INDEX oauth_used_refresh_token ON oauth_used_refresh(token_id);
  CREATE TABLE oauth_authorized_client (
    did TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    client_name TEXT,
    scope TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (did, client_id)
  ) STRICT;
  `,
];

export function openAccountDb(path: string): AccountDb {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // FULL: an acknowledged account creation or password change survives a power cut.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

function migrate(db: AccountDb): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`account database schema version ${current} is newer than this Portage (${MIGRATIONS.length})`);
  }
  db.transaction(() => {
    for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  })();
}
