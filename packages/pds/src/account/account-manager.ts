/**
 * The account manager: every read and write of the account database, behind methods that
 * keep its rules (unique handles and emails, one-use invites, refresh-token rotation with a
 * grace period, app passwords). Endpoints call it; it never speaks HTTP, but it throws
 * XrpcErrors for the failures clients must be able to tell apart.
 *
 * Changes the firehose announces (sign-up, handle, activation, deactivation, deletion) write
 * their #identity/#account/#sync events into the account database's outbox in the SAME
 * transaction as the change (see sequencer/outbox.ts): after a crash either both the change
 * and its events exist or neither does. The sequencer is attached once at start-up
 * (`sequenceEventsThrough`); without one (a bare manager in tests) nothing is announced.
 */
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { type AccessScope, AuthScope } from '../auth/scopes.ts';
import { REFRESH_GRACE_SECONDS, type TokenIssuer } from '../auth/tokens.ts';
import type { AccountEventData, IdentityEventData, SyncEventData } from '../sequencer/events.ts';
import type { OutboxHost } from '../sequencer/sequencer.ts';
import { AuthRequired, InvalidRequest } from '../xrpc/errors.ts';
import type Database from 'better-sqlite3';
import { type AccountDb, openAccountDb } from './db.ts';
import { APP_PASSWORD_RE, generateAppPassword, generateInviteCode, hashPassword, verifyPassword } from './passwords.ts';

export interface Account {
  did: string;
  handle: string | null;
  email: string | null;
  emailConfirmedAt: string | null;
  /** Sign-in with the account password also asks for a code mailed to the account. */
  emailAuthFactor: boolean;
  createdAt: string;
  deactivatedAt: string | null;
  /** When a deactivated account may be deleted (deactivateAccount's deleteAfter). */
  deleteAfter: string | null;
  takedownRef: string | null;
  invitesDisabled: boolean;
}

export interface AppPasswordInfo {
  name: string;
  createdAt: string;
  privileged: boolean;
}

export interface InviteCodeInfo {
  code: string;
  available: number;
  disabled: boolean;
  forAccount: string;
  createdBy: string;
  createdAt: string;
  uses: { usedBy: string; usedAt: string }[];
}

export interface Session {
  accessJwt: string;
  refreshJwt: string;
  /** The access token's scope (decides, e.g., whether the email may be shown). */
  scope: AccessScope;
}

interface AccountRow {
  did: string;
  handle: string | null;
  email: string | null;
  email_confirmed_at: string | null;
  email_auth_factor: number;
  password_scrypt: string;
  created_at: string;
  deactivated_at: string | null;
  delete_after: string | null;
  takedown_ref: string | null;
  invites_disabled: number;
}

interface RefreshRow {
  id: string;
  did: string;
  expires_at: number;
  app_password_name: string | null;
  next_id: string | null;
}

export const NEW_PASSWORD_MAX_LENGTH = 256;
/** Email tokens are valid this long (the reference's 15 minutes). */
export const EMAIL_TOKEN_TTL_SECONDS = 15 * 60;
export type EmailTokenPurpose =
  'plc_operation' | 'confirm_email' | 'update_email' | 'reset_password' | 'delete_account' | 'sign_in';

const EMAIL_TOKEN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function generateEmailToken(): string {
  let out = '';
  for (let i = 0; i < 10; i++) out += (i === 5 ? '-' : '') + EMAIL_TOKEN_CHARS[randomInt(EMAIL_TOKEN_CHARS.length)];
  return out;
}
/** Longest app-password name, as in the lexicon of createAppPassword. */
const APP_PASSWORD_NAME_MAX = 100;
/** How many account rows #accountRow keeps in memory before starting over. */
const MAX_CACHED_ACCOUNT_ROWS = 10_000;

function toAccount(row: AccountRow): Account {
  return {
    did: row.did,
    handle: row.handle,
    email: row.email,
    emailConfirmedAt: row.email_confirmed_at,
    emailAuthFactor: row.email_auth_factor === 1,
    createdAt: row.created_at,
    deactivatedAt: row.deactivated_at,
    deleteAfter: row.delete_after,
    takedownRef: row.takedown_ref,
    invitesDisabled: row.invites_disabled === 1,
  };
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && 'code' in err && String(err.code).startsWith('SQLITE_CONSTRAINT');
}

/** The part of the sequencer account changes announce themselves through (the Sequencer has it). */
export interface AccountEventLog {
  sequenceIdentity(host: OutboxHost, data: IdentityEventData): void;
  sequenceAccount(host: OutboxHost, data: AccountEventData): void;
  sequenceSync(host: OutboxHost, data: SyncEventData): void;
}

/** The head commit an activated account announces (#sync), for consumers to resync from. */
export type ActivationHead = Omit<SyncEventData, 'did'>;

export interface AccountManagerOptions {
  dbPath: string;
  tokens: TokenIssuer;
  hostname: string;
  /** Seconds since the epoch; injectable so tests can move time. */
  now?: () => number;
}

/** The most uses one invite code may have, and the most codes one call may create. */
const MAX_INVITE_CODES = 10_000;

export class AccountManager {
  readonly db: AccountDb;
  readonly #tokens: TokenIssuer;
  readonly #hostname: string;
  readonly #now: () => number;
  /**
   * Statements prepared once and reused, keyed by their SQL: compiling the SQL again on every
   * call cost more than running it (getAccount sits on the path of every repo read and write).
   */
  readonly #statements = new Map<string, Database.Statement<unknown[], unknown>>();
  readonly #accountByDid: Database.Statement<[string], AccountRow>;
  readonly #accountByHandle: Database.Statement<[string], AccountRow>;
  #events: { log: AccountEventLog; host: OutboxHost } | undefined;
  /**
   * Account rows by DID and by handle, read on every authenticated request. Reading the row
   * again costs a SQLite read transaction (~11 µs, file-lock system calls) per request; this
   * process is the only writer of the account table, and every write to it goes through
   * #changeAccounts, which empties the cache.
   */
  readonly #rowCache = new Map<string, AccountRow>();

  constructor(opts: AccountManagerOptions) {
    this.db = openAccountDb(opts.dbPath);
    this.#accountByDid = this.#prepared<[string], AccountRow>('SELECT * FROM account WHERE did = ?');
    this.#accountByHandle = this.#prepared<[string], AccountRow>('SELECT * FROM account WHERE handle = ?');
    this.#tokens = opts.tokens;
    this.#hostname = opts.hostname;
    this.#now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  }

  close(): void {
    this.#statements.clear();
    this.db.close();
  }

  /**
   * From now on, account changes write their firehose events into `host` (this manager's own
   * database) through `log`, inside the transaction of the change.
   */
  sequenceEventsThrough(log: AccountEventLog, host: OutboxHost): void {
    if (host.db !== this.db) throw new Error('account events must go through the account database outbox');
    this.#events = { log, host };
  }

  /**
   * Runs `change`, which writes the account table, in one account-DB transaction with the
   * events it announces, and forgets the cached rows (also when it fails: it may have raced).
   */
  #changeAccounts<T>(change: () => T): T {
    try {
      return this.db.transaction(change)();
    } finally {
      this.#rowCache.clear();
    }
  }

  /** Call only inside an account-DB transaction: the event commits or rolls back with it. */
  #announceIdentity(data: IdentityEventData): void {
    if (this.#events) this.#events.log.sequenceIdentity(this.#events.host, data);
  }

  #announceAccount(data: AccountEventData): void {
    if (this.#events) this.#events.log.sequenceAccount(this.#events.host, data);
  }

  #announceSync(data: SyncEventData): void {
    if (this.#events) this.#events.log.sequenceSync(this.#events.host, data);
  }

  /** The statement for `sql`, compiled on first use. */
  #prepared<Params extends unknown[] = unknown[], Row = unknown>(sql: string): Database.Statement<Params, Row> {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement as unknown as Database.Statement<Params, Row>;
  }

  /** The row of a DID, or of a handle (already lower-cased). */
  #accountRow(didOrHandle: string): AccountRow | undefined {
    const cached = this.#rowCache.get(didOrHandle);
    if (cached) return cached;
    const row = (didOrHandle.startsWith('did:') ? this.#accountByDid : this.#accountByHandle).get(didOrHandle);
    if (row) {
      // Bounded: a server with more accounts than this simply reads the rest from SQLite again.
      if (this.#rowCache.size >= MAX_CACHED_ACCOUNT_ROWS) this.#rowCache.clear();
      this.#rowCache.set(didOrHandle, Object.freeze(row));
    }
    return row;
  }

  // ---- accounts ----

  /** By DID or handle (case-insensitive). */
  getAccount(handleOrDid: string): Account | undefined {
    const row = this.#accountRow(handleOrDid.startsWith('did:') ? handleOrDid : handleOrDid.toLowerCase());
    return row ? toAccount(row) : undefined;
  }

  getAccountByEmail(email: string): Account | undefined {
    const row = this.#prepared<[string], AccountRow>('SELECT * FROM account WHERE email = ?').get(email.toLowerCase());
    return row ? toAccount(row) : undefined;
  }

  /** DIDs and handles of hosted accounts, oldest first (for listRepos-style paging). */
  listAccounts(opts: { limit: number; cursor?: string }): Account[] {
    const rows = this.#prepared<[string, number], AccountRow>(
      'SELECT * FROM account WHERE did > ? ORDER BY did LIMIT ?',
    ).all(opts.cursor ?? '', opts.limit);
    return rows.map(toAccount);
  }

  /**
   * Inserts a new account (and consumes its invite code) in one transaction. A handle or
   * email taken meanwhile by a concurrent sign-up fails here, not later. An active account
   * announces itself (#identity, #account) in that transaction; one created deactivated (moving
   * in) does so when it is activated.
   */
  async createAccount(
    args: {
      did: string;
      handle: string;
      email: string | null;
      inviteCode?: string;
      deactivated?: boolean;
    } & (
      | { password: string }
      /** hashPassword(password), when the caller started it earlier to run beside other work. */
      | { passwordHash: Promise<string> }
    ),
  ): Promise<void> {
    const passwordHash = await ('passwordHash' in args ? args.passwordHash : hashPassword(args.password));
    const now = new Date(this.#now() * 1000).toISOString();
    const insert = () =>
      this.#changeAccounts(() => {
        if (args.inviteCode !== undefined) this.#useInviteCode(args.inviteCode, args.did, now);
        this.#prepared(
          `INSERT INTO account (did, handle, email, password_scrypt, created_at, deactivated_at)
           VALUES (?, ?, ?, ?, ?, ?)`,
        ).run(
          args.did,
          args.handle,
          args.email?.toLowerCase() ?? null,
          passwordHash,
          now,
          args.deactivated ? now : null,
        );
        if (!args.deactivated) {
          this.#announceIdentity({ did: args.did, handle: args.handle });
          this.#announceAccount({ did: args.did, active: true });
        }
      });
    try {
      insert();
    } catch (err) {
      if (isUniqueViolation(err)) {
        if (this.getAccount(args.did)) throw InvalidRequest(`Account already exists: ${args.did}`, 'AlreadyExists');
        if (this.getAccount(args.handle))
          throw InvalidRequest(`Handle already taken: ${args.handle}`, 'HandleNotAvailable');
        if (args.email && this.getAccountByEmail(args.email))
          throw InvalidRequest(`Email already taken: ${args.email}`);
      }
      throw err;
    }
  }

  /**
   * Deactivates (e.g. after migrating away); `deleteAfter` is an ISO datetime or null.
   * Announces #account (deactivated).
   */
  deactivateAccount(did: string, deleteAfter: string | null): void {
    const now = new Date(this.#now() * 1000).toISOString();
    this.#changeAccounts(() => {
      const changed = this.#prepared(
        'UPDATE account SET deactivated_at = coalesce(deactivated_at, ?), delete_after = ? WHERE did = ?',
      ).run(now, deleteAfter, did).changes;
      if (changed === 1) this.#announceAccount({ did, active: false, status: 'deactivated' });
    });
  }

  /**
   * Activates the account and announces it: #identity (its handle), #account (active) and,
   * given the repository's `head`, a #sync for consumers to resync from.
   */
  activateAccount(did: string, head?: ActivationHead): void {
    this.#changeAccounts(() => {
      const changed = this.#prepared('UPDATE account SET deactivated_at = NULL, delete_after = NULL WHERE did = ?').run(
        did,
      ).changes;
      if (changed !== 1) return;
      const handle = this.#accountByDid.get(did)?.handle ?? undefined;
      this.#announceIdentity({ did, handle });
      this.#announceAccount({ did, active: true });
      if (head) this.#announceSync({ did, ...head });
    });
  }

  /**
   * Deletes the account's row (and, by cascade, its sessions, app passwords, email tokens and
   * preferences) and the invite codes it was given; announces #account (deleted).
   */
  deleteAccount(did: string): void {
    this.#changeAccounts(() => {
      this.#prepared(
        'DELETE FROM invite_code_use WHERE code IN (SELECT code FROM invite_code WHERE for_account = ?)',
      ).run(did);
      this.#prepared('DELETE FROM invite_code WHERE for_account = ?').run(did);
      const changed = this.#prepared('DELETE FROM account WHERE did = ?').run(did).changes;
      if (changed === 1) this.#announceAccount({ did, active: false, status: 'deleted' });
    });
  }

  /** Changes the handle and announces it (#identity). */
  updateHandle(did: string, handle: string): void {
    try {
      this.#changeAccounts(() => {
        const changed = this.#prepared('UPDATE account SET handle = ? WHERE did = ?').run(handle, did).changes;
        if (changed === 1) this.#announceIdentity({ did, handle });
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw InvalidRequest(`Handle already taken: ${handle}`, 'HandleNotAvailable');
      throw err;
    }
  }

  // ---- passwords and sessions ----

  /**
   * Checks an identifier (handle, email or DID) and password. The account password gives a
   * full-access session; an app password gives an app-password session (its name is
   * returned so refreshes keep that scope). Failures are one uniform 401.
   */
  async login(
    identifier: string,
    password: string,
  ): Promise<{ account: Account; appPassword: AppPasswordInfo | null }> {
    const id = identifier.trim().toLowerCase();
    const row = id.includes('@')
      ? this.#prepared<[string], AccountRow>('SELECT * FROM account WHERE email = ?').get(id)
      : this.#accountRow(identifier.trim().startsWith('did:') ? identifier.trim() : id);
    if (!row) {
      // Spend the same time as a real check so probing for accounts gains nothing.
      await hashPassword(password);
      throw AuthRequired('Invalid identifier or password');
    }
    if (await verifyPassword(password, row.password_scrypt)) return { account: toAccount(row), appPassword: null };
    if (row.takedown_ref === null && APP_PASSWORD_RE.test(password)) {
      const appPassword = await this.verifyAppPassword(row.did, password);
      if (appPassword) return { account: toAccount(row), appPassword };
    }
    throw AuthRequired('Invalid identifier or password');
  }

  async verifyAccountPassword(did: string, password: string): Promise<boolean> {
    const row = this.#prepared<[string], { password_scrypt: string }>(
      'SELECT password_scrypt FROM account WHERE did = ?',
    ).get(did);
    return row ? verifyPassword(password, row.password_scrypt) : false;
  }

  /** A new session: access JWT plus a stored refresh token (linked to the app password used, if any). */
  async createSession(did: string, appPassword: AppPasswordInfo | null, takendown = false): Promise<Session> {
    const scope = takendown ? AuthScope.Takendown : scopeFor(appPassword);
    const tokens = await this.#tokens.createSessionTokens(did, scope);
    this.#prepared('INSERT INTO refresh_token (id, did, expires_at, app_password_name) VALUES (?, ?, ?, ?)').run(
      tokens.refreshId,
      did,
      tokens.refreshExpiresAt,
      appPassword?.name ?? null,
    );
    return { accessJwt: tokens.accessJwt, refreshJwt: tokens.refreshJwt, scope };
  }

  /**
   * Exchanges a refresh token for a new session. The old token stays usable for a grace
   * period (a client whose response got lost may retry), and every retry within it yields the
   * same successor id, so a token never forks into many live sessions. Past the grace period,
   * or once revoked, the token is refused with ExpiredToken.
   */
  async rotateRefreshToken(tokenId: string): Promise<(Session & { did: string }) | null> {
    const now = this.#now();
    const row = this.#prepared<[string], RefreshRow>('SELECT * FROM refresh_token WHERE id = ?').get(tokenId);
    if (!row) return null;
    this.#prepared('DELETE FROM refresh_token WHERE did = ? AND expires_at <= ?').run(row.did, now);
    const graceEnd = Math.min(now + REFRESH_GRACE_SECONDS, row.expires_at);
    if (graceEnd <= now || row.expires_at <= now) return null;
    const appPassword = row.app_password_name ? this.#getAppPassword(row.did, row.app_password_name) : null;
    if (row.app_password_name && !appPassword) return null;
    const account = this.getAccount(row.did);
    const nextId = row.next_id ?? randomBytes(32).toString('base64url');
    const scope = account?.takedownRef ? AuthScope.Takendown : scopeFor(appPassword);
    const accessJwt = await this.#tokens.createAccessToken(row.did, scope, now);
    const refresh = await this.#tokens.createRefreshToken(row.did, nextId, now);
    const stored = this.db.transaction(() => {
      // Another rotation of the same token may have chosen its successor while this one signed:
      // then start again and hand out that successor, never a second one.
      const claimed = this.#prepared(
        'UPDATE refresh_token SET expires_at = ?, next_id = ? WHERE id = ? AND (next_id IS NULL OR next_id = ?)',
      ).run(graceEnd, nextId, tokenId, nextId).changes;
      if (claimed === 0) return false;
      this.#prepared(
        // A retry finds the successor stored already, perhaps rotated in its turn: its row,
        // grace period included, stays as it is.
        `INSERT INTO refresh_token (id, did, expires_at, app_password_name) VALUES (?, ?, ?, ?)
           ON CONFLICT (id) DO NOTHING`,
      ).run(nextId, row.did, refresh.expiresAt, row.app_password_name);
      return true;
    })();
    if (!stored) return this.rotateRefreshToken(tokenId);
    return { did: row.did, accessJwt, refreshJwt: refresh.jwt, scope };
  }

  revokeRefreshToken(tokenId: string): boolean {
    return this.#prepared('DELETE FROM refresh_token WHERE id = ?').run(tokenId).changes > 0;
  }

  // ---- app passwords ----

  async createAppPassword(
    did: string,
    name: string,
    privileged: boolean,
  ): Promise<AppPasswordInfo & { password: string }> {
    const trimmed = name.trim();
    if (trimmed === '') throw InvalidRequest('App password name must not be empty');
    if (trimmed.length > APP_PASSWORD_NAME_MAX) {
      throw InvalidRequest(`App password name must not be longer than ${APP_PASSWORD_NAME_MAX} characters`);
    }
    const password = generateAppPassword();
    const passwordHash = await hashPassword(password);
    const createdAt = new Date(this.#now() * 1000).toISOString();
    try {
      this.#prepared(
        'INSERT INTO app_password (did, name, password_scrypt, privileged, created_at) VALUES (?, ?, ?, ?, ?)',
      ).run(did, trimmed, passwordHash, privileged ? 1 : 0, createdAt);
    } catch (err) {
      if (isUniqueViolation(err)) {
        throw InvalidRequest(`An app password named "${trimmed}" already exists`, 'DuplicateAppPassword');
      }
      throw err;
    }
    return { name: trimmed, password, createdAt, privileged };
  }

  listAppPasswords(did: string): AppPasswordInfo[] {
    return this.#prepared<[string], { name: string; created_at: string; privileged: number }>(
      'SELECT name, created_at, privileged FROM app_password WHERE did = ? ORDER BY created_at DESC, name',
    )
      .all(did)
      .map((r) => ({ name: r.name, createdAt: r.created_at, privileged: r.privileged === 1 }));
  }

  /** Deletes the app password and every session that logged in with it. */
  revokeAppPassword(did: string, name: string): void {
    this.db.transaction(() => {
      this.#prepared('DELETE FROM app_password WHERE did = ? AND name = ?').run(did, name);
      this.#prepared('DELETE FROM refresh_token WHERE did = ? AND app_password_name = ?').run(did, name);
    })();
  }

  async verifyAppPassword(did: string, password: string): Promise<AppPasswordInfo | null> {
    const rows = this.#prepared<
      [string],
      { name: string; password_scrypt: string; created_at: string; privileged: number }
    >('SELECT name, password_scrypt, created_at, privileged FROM app_password WHERE did = ?').all(did);
    for (const row of rows) {
      if (await verifyPassword(password, row.password_scrypt)) {
        return { name: row.name, createdAt: row.created_at, privileged: row.privileged === 1 };
      }
    }
    return null;
  }

  #getAppPassword(did: string, name: string): AppPasswordInfo | null {
    const row = this.#prepared<[string, string], { name: string; created_at: string; privileged: number }>(
      'SELECT name, created_at, privileged FROM app_password WHERE did = ? AND name = ?',
    ).get(did, name);
    return row ? { name: row.name, createdAt: row.created_at, privileged: row.privileged === 1 } : null;
  }

  // ---- email tokens ----

  /**
   * A new one-time token for `purpose` (e.g. plc_operation), replacing any earlier one:
   * `XXXXX-XXXXX`, easy to read out of a mail and type back.
   */
  createEmailToken(did: string, purpose: EmailTokenPurpose): string {
    const token = generateEmailToken();
    const now = new Date(this.#now() * 1000).toISOString();
    this.#prepared(
      `INSERT INTO email_token (purpose, did, token, requested_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (purpose, did) DO UPDATE SET token = excluded.token, requested_at = excluded.requested_at`,
    ).run(purpose, did, token, now);
    return token;
  }

  /**
   * Checks and uses up a token: 400 InvalidToken when it is not the one sent, 400 ExpiredToken
   * when older than `maxAgeSeconds`. A token works once.
   */
  consumeEmailToken(did: string, purpose: EmailTokenPurpose, token: string, maxAgeSeconds = EMAIL_TOKEN_TTL_SECONDS) {
    const row = this.#prepared<[string, string], { token: string; requested_at: string }>(
      'SELECT token, requested_at FROM email_token WHERE purpose = ? AND did = ?',
    ).get(purpose, did);
    const given = Buffer.from(token.trim().toUpperCase(), 'utf8');
    const stored = Buffer.from(row?.token ?? '', 'utf8');
    if (!row || given.length !== stored.length || !timingSafeEqual(given, stored)) {
      throw InvalidRequest('Token is invalid', 'InvalidToken');
    }
    if (Date.parse(row.requested_at) / 1000 + maxAgeSeconds < this.#now()) {
      throw InvalidRequest('Token is expired', 'ExpiredToken');
    }
    this.#prepared('DELETE FROM email_token WHERE purpose = ? AND did = ?').run(purpose, did);
  }

  /**
   * The account a token was mailed to, for flows where the person is not signed in (password
   * reset): 400 InvalidToken when no account has it, ExpiredToken when it is too old.
   */
  didForEmailToken(purpose: EmailTokenPurpose, token: string, maxAgeSeconds = EMAIL_TOKEN_TTL_SECONDS): string {
    // Every outstanding token of the purpose is compared in constant time, none skipped once one
    // matches: an SQL lookup by token would compare it byte by byte.
    const given = Buffer.from(token.trim().toUpperCase(), 'utf8');
    let found: { did: string; requested_at: string } | undefined;
    for (const row of this.#prepared<[string], { did: string; token: string; requested_at: string }>(
      'SELECT did, token, requested_at FROM email_token WHERE purpose = ?',
    ).iterate(purpose)) {
      const stored = Buffer.from(row.token, 'utf8');
      if (stored.length === given.length && timingSafeEqual(stored, given)) found = row;
    }
    if (!found) throw InvalidRequest('Token is invalid', 'InvalidToken');
    if (Date.parse(found.requested_at) / 1000 + maxAgeSeconds < this.#now()) {
      throw InvalidRequest('Token is expired', 'ExpiredToken');
    }
    return found.did;
  }

  // ---- email address and password ----

  /** Marks the account's email address as confirmed. */
  confirmEmail(did: string): void {
    const now = new Date(this.#now() * 1000).toISOString();
    this.#changeAccounts(() => this.#prepared('UPDATE account SET email_confirmed_at = ? WHERE did = ?').run(now, did));
  }

  /**
   * Sets the email address (unconfirmed again when it changes) and, when given, whether sign-in
   * asks for a mailed code. 400 when another account has the address.
   */
  updateEmail(did: string, email: string, emailAuthFactor?: boolean): void {
    try {
      this.#changeAccounts(() => {
        this.#prepared(
          `UPDATE account SET email = @email,
             email_confirmed_at = CASE WHEN email = @email THEN email_confirmed_at ELSE NULL END WHERE did = @did`,
        ).run({ email: email.toLowerCase(), did });
        if (emailAuthFactor !== undefined) {
          this.#prepared('UPDATE account SET email_auth_factor = ? WHERE did = ?').run(emailAuthFactor ? 1 : 0, did);
        }
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw InvalidRequest('This email address is already taken');
      throw err;
    }
  }

  /**
   * Sets a new password and ends every session of the account (its refresh tokens), with any
   * password-reset token, in one transaction: whoever knew the old password is signed out.
   */
  async updatePassword(did: string, password: string): Promise<void> {
    const passwordScrypt = await hashPassword(password);
    this.#changeAccounts(() => {
      this.#prepared('UPDATE account SET password_scrypt = ? WHERE did = ?').run(passwordScrypt, did);
      this.#prepared('DELETE FROM refresh_token WHERE did = ?').run(did);
      this.#prepared("DELETE FROM email_token WHERE did = ? AND purpose = 'reset_password'").run(did);
    });
  }

  // ---- invite codes ----

  createInviteCodes(args: { forAccounts: string[]; count: number; useCount: number; createdBy: string }): {
    account: string;
    codes: string[];
  }[] {
    // The lexicon leaves these unbounded: a code is used at least once, and one call is bounded.
    if (args.useCount < 1 || args.useCount > MAX_INVITE_CODES) {
      throw InvalidRequest(`useCount must be between 1 and ${MAX_INVITE_CODES}`);
    }
    if (args.forAccounts.length * args.count > MAX_INVITE_CODES) {
      throw InvalidRequest(`Too many codes requested at once (max ${MAX_INVITE_CODES})`);
    }
    const createdAt = new Date(this.#now() * 1000).toISOString();
    const insert = this.#prepared(
      'INSERT INTO invite_code (code, available_uses, for_account, created_by, created_at) VALUES (?, ?, ?, ?, ?)',
    );
    return this.db.transaction(() =>
      args.forAccounts.map((account) => {
        const codes: string[] = [];
        for (let i = 0; i < args.count; i++) {
          const code = generateInviteCode(this.#hostname);
          insert.run(code, args.useCount, account, args.createdBy, createdAt);
          codes.push(code);
        }
        return { account, codes };
      }),
    )();
  }

  /** Throws 400 InvalidInviteCode unless the code exists, is enabled and has a use left. */
  ensureInviteAvailable(code: string): void {
    const row = this.#prepared<[string], { available_uses: number; disabled: number; for_account: string }>(
      'SELECT available_uses, disabled, for_account FROM invite_code WHERE code = ?',
    ).get(code);
    const used =
      this.#prepared<[string], { n: number }>('SELECT count(*) AS n FROM invite_code_use WHERE code = ?').get(code)
        ?.n ?? 0;
    const owner = row ? this.getAccount(row.for_account) : undefined;
    if (!row || row.disabled === 1 || used >= row.available_uses || owner?.invitesDisabled || owner?.takedownRef) {
      throw InvalidRequest('Provided invite code not available', 'InvalidInviteCode');
    }
  }

  #useInviteCode(code: string, usedBy: string, usedAt: string): void {
    this.ensureInviteAvailable(code);
    this.#prepared('INSERT INTO invite_code_use (code, used_by, used_at) VALUES (?, ?, ?)').run(code, usedBy, usedAt);
  }

  getAccountInviteCodes(did: string, opts: { includeUsed: boolean }): InviteCodeInfo[] {
    const codes = this.#prepared<
      [string],
      {
        code: string;
        available_uses: number;
        disabled: number;
        for_account: string;
        created_by: string;
        created_at: string;
      }
    >('SELECT * FROM invite_code WHERE for_account = ? ORDER BY created_at, code').all(did);
    const usesOf = this.#prepared<[string], { used_by: string; used_at: string }>(
      'SELECT used_by, used_at FROM invite_code_use WHERE code = ? ORDER BY used_at',
    );
    return codes
      .map((c) => {
        const uses = usesOf.all(c.code).map((u) => ({ usedBy: u.used_by, usedAt: u.used_at }));
        return {
          code: c.code,
          available: Math.max(0, c.available_uses - uses.length),
          disabled: c.disabled === 1,
          forAccount: c.for_account,
          createdBy: c.created_by,
          createdAt: c.created_at,
          uses,
        };
      })
      .filter((c) => opts.includeUsed || c.available > 0);
  }

  // ---- preferences ----

  getPreferences(did: string, namespace: string): unknown[] {
    return this.#prepared<[string], { name: string; value_json: string }>(
      'SELECT name, value_json FROM account_pref WHERE did = ? ORDER BY id',
    )
      .all(did)
      .filter((r) => matchesNamespace(namespace, r.name))
      .map((r) => JSON.parse(r.value_json) as unknown);
  }

  /** How many preferences the account has in every namespace (checkAccountStatus's privateStateValues). */
  countPreferences(did: string): number {
    return this.#prepared<[string], { n: number }>('SELECT count(*) AS n FROM account_pref WHERE did = ?').get(did)!.n;
  }

  /**
   * Replaces the account's preferences in `namespace` with `values` (each already checked to
   * have a `$type` in that namespace). Types in `keep` are left as they were: the caller may
   * not see or change them.
   */
  putPreferences(did: string, namespace: string, values: { $type: string }[], keep: (type: string) => boolean): void {
    const existing = this.#prepared<[string], { id: number; name: string }>(
      'SELECT id, name FROM account_pref WHERE did = ?',
    ).all(did);
    const remove = this.#prepared('DELETE FROM account_pref WHERE id = ?');
    const insert = this.#prepared('INSERT INTO account_pref (did, name, value_json) VALUES (?, ?, ?)');
    this.db.transaction(() => {
      for (const row of existing) if (matchesNamespace(namespace, row.name) && !keep(row.name)) remove.run(row.id);
      for (const value of values) insert.run(did, value.$type, JSON.stringify(value));
    })();
  }
}

function scopeFor(appPassword: AppPasswordInfo | null): AccessScope {
  if (!appPassword) return AuthScope.Access;
  return appPassword.privileged ? AuthScope.AppPassPrivileged : AuthScope.AppPass;
}

export function matchesNamespace(namespace: string, type: string): boolean {
  return type === namespace || type.startsWith(`${namespace}.`);
}
