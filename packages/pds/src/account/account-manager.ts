/**
 * The account manager: the one owner of the account database. It keeps the accounts themselves
 * (rows, handles, email addresses, account passwords and sign-in, activation, deletion) and
 * composes the modules that each keep one other part of that database, handing them its
 * connection, prepared statements and clock:
 *
 *   sessions.ts       refresh tokens: sessions, rotation with a grace period, revocation
 *   app-passwords.ts  app passwords
 *   email-tokens.ts   one-time codes mailed to the account
 *   invites.ts        invite codes and their uses
 *   preferences.ts    stored preferences
 *
 * Endpoints call AccountManager, whose methods keep the API they always had and delegate to the
 * modules; changes that span modules (revoking an app password with its sessions, a new
 * password ending every session) run here in one transaction. It never speaks HTTP, but it
 * throws XrpcErrors for the failures clients must be able to tell apart.
 *
 * Only AccountManager writes the account table, always through #changeAccounts, which empties
 * the row cache read on every authenticated request.
 *
 * Changes the firehose announces (sign-up, handle, activation, deactivation, deletion) write
 * their #identity/#account/#sync events into the account database's outbox in the SAME
 * transaction as the change (see sequencer/outbox.ts): after a crash either both the change
 * and its events exist or neither does. The sequencer is attached once at start-up
 * (`sequenceEventsThrough`); without one (a bare manager in tests) nothing is announced.
 */
import { randomBytes } from 'node:crypto';
import type { TokenIssuer } from '../auth/tokens.ts';
import type { AccountEventData, IdentityEventData, SyncEventData } from '../sequencer/events.ts';
import type { OutboxHost } from '../sequencer/sequencer.ts';
import { AuthRequired, InvalidRequest } from '../xrpc/errors.ts';
import type Database from 'better-sqlite3';
import { type AppPasswordInfo, AppPasswords } from './app-passwords.ts';
import { type AccountDb, openAccountDb } from './db.ts';
import { EMAIL_TOKEN_TTL_SECONDS, type EmailTokenPurpose, EmailTokens } from './email-tokens.ts';
import { type InviteCodeInfo, Invites } from './invites.ts';
import { APP_PASSWORD_RE, hashPassword, verifyPassword } from './passwords.ts';
import { PreferenceStore } from './preferences.ts';
import { type Session, Sessions } from './sessions.ts';
import { type AccountTables, isUniqueViolation, PreparedStatements } from './tables.ts';

export type { AppPasswordInfo } from './app-passwords.ts';
export { EMAIL_TOKEN_TTL_SECONDS, type EmailTokenPurpose } from './email-tokens.ts';
export type { InviteCodeInfo } from './invites.ts';
export { matchesNamespace } from './preferences.ts';
export type { Session } from './sessions.ts';

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

export const NEW_PASSWORD_MAX_LENGTH = 256;
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

export class AccountManager {
  readonly db: AccountDb;
  readonly sessions: Sessions;
  readonly appPasswords: AppPasswords;
  readonly emailTokens: EmailTokens;
  readonly invites: Invites;
  readonly preferences: PreferenceStore;
  readonly #now: () => number;
  readonly #statements: PreparedStatements;
  readonly #accountByDid: Database.Statement<[string], AccountRow>;
  readonly #accountByHandle: Database.Statement<[string], AccountRow>;
  #events: { log: AccountEventLog; host: OutboxHost } | undefined;
  /** What sign-in checks a password against when no account has the identifier. */
  #decoyHash: Promise<string> | undefined;
  /**
   * Account rows by DID and by handle, read on every authenticated request. Reading the row
   * again costs a SQLite read transaction (file-lock system calls) per request; this process is
   * the only writer of the account table, and every write to it goes through #changeAccounts,
   * which empties the cache.
   */
  readonly #rowCache = new Map<string, AccountRow>();

  constructor(opts: AccountManagerOptions) {
    this.db = openAccountDb(opts.dbPath);
    this.#statements = new PreparedStatements(this.db);
    this.#now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    this.#accountByDid = this.#prepared<[string], AccountRow>('SELECT * FROM account WHERE did = ?');
    this.#accountByHandle = this.#prepared<[string], AccountRow>('SELECT * FROM account WHERE handle = ?');
    const tables: AccountTables = {
      db: this.db,
      prepared: (sql) => this.#statements.get(sql),
      now: () => this.#now(),
    };
    this.appPasswords = new AppPasswords(tables);
    this.sessions = new Sessions(
      tables,
      opts.tokens,
      this.appPasswords,
      (did) => (this.#accountRow(did)?.takedown_ref ?? null) !== null,
    );
    this.emailTokens = new EmailTokens(tables);
    this.invites = new Invites(tables, opts.hostname, (did) => this.getAccount(did));
    this.preferences = new PreferenceStore(tables);
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

  #prepared<Params extends unknown[] = unknown[], Row = unknown>(sql: string): Database.Statement<Params, Row> {
    return this.#statements.get<Params, Row>(sql);
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

  /** How many accounts are active, deactivated and taken down (the metrics). */
  countAccountsByStatus(): Record<'active' | 'deactivated' | 'takendown', number> {
    const row = this.#prepared<[], { active: number; deactivated: number; takendown: number }>(
      `SELECT count(*) FILTER (WHERE takedown_ref IS NULL AND deactivated_at IS NULL) AS active,
              count(*) FILTER (WHERE takedown_ref IS NULL AND deactivated_at IS NOT NULL) AS deactivated,
              count(*) FILTER (WHERE takedown_ref IS NOT NULL) AS takendown
       FROM account`,
    ).get()!;
    return { ...row };
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
        if (args.inviteCode !== undefined) this.invites.use(args.inviteCode, args.did, now);
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
      this.invites.deleteForAccount(did);
      const changed = this.#prepared('DELETE FROM account WHERE did = ?').run(did).changes;
      if (changed === 1) this.#announceAccount({ did, active: false, status: 'deleted' });
    });
  }

  /**
   * Takes the account down (`ref`, the moderation reference) or restores it (null), ending its
   * sessions on takedown, and announces #account (takendown, or its status once restored) in the
   * same transaction. Returns false when no such account exists.
   */
  setTakedown(did: string, ref: string | null): boolean {
    return this.#changeAccounts(() => {
      const row = this.#accountByDid.get(did);
      if (!row) return false;
      this.#prepared('UPDATE account SET takedown_ref = ? WHERE did = ?').run(ref, did);
      if (ref !== null) {
        this.#prepared('DELETE FROM refresh_token WHERE did = ?').run(did);
        this.#announceAccount({ did, active: false, status: 'takendown' });
      } else if (row.deactivated_at !== null) {
        this.#announceAccount({ did, active: false, status: 'deactivated' });
      } else {
        this.#announceAccount({ did, active: true });
      }
      return true;
    });
  }

  /** Re-announces the account's current hosting status (#account), as updateSubjectStatus without a change does. */
  announceStatus(did: string): void {
    this.#changeAccounts(() => {
      const row = this.#accountByDid.get(did);
      if (!row) return;
      if (row.takedown_ref !== null) this.#announceAccount({ did, active: false, status: 'takendown' });
      else if (row.deactivated_at !== null) this.#announceAccount({ did, active: false, status: 'deactivated' });
      else this.#announceAccount({ did, active: true });
    });
  }

  setInvitesDisabled(did: string, disabled: boolean): void {
    this.#changeAccounts(() =>
      this.#prepared('UPDATE account SET invites_disabled = ? WHERE did = ?').run(disabled ? 1 : 0, did),
    );
  }

  /** Accounts whose email address starts with `email` (or every account), by DID, in pages. */
  searchAccounts(opts: { email?: string; limit: number; cursor?: string }): Account[] {
    return this.#prepared<[string, string, number], AccountRow>(
      "SELECT * FROM account WHERE did > ? AND coalesce(email, '') LIKE ? ESCAPE '\\' ORDER BY did LIMIT ?",
    )
      .all(opts.cursor ?? '', likePrefix(opts.email ?? ''), opts.limit)
      .map(toAccount);
  }

  /** Accounts whose handle or email starts with `query` (every account when empty), by DID, in pages (the admin page). */
  findAccounts(opts: { query: string; limit: number; cursor?: string }): Account[] {
    const prefix = likePrefix(opts.query);
    return this.#prepared<[string, string, string, number], AccountRow>(
      `SELECT * FROM account WHERE did > ? AND (coalesce(handle, '') LIKE ? ESCAPE '\\' OR coalesce(email, '') LIKE ? ESCAPE '\\')
       ORDER BY did LIMIT ?`,
    )
      .all(opts.cursor ?? '', prefix, prefix, opts.limit)
      .map(toAccount);
  }

  /** The account's refresh tokens not yet expired: its signed-in sessions (the admin page). */
  countLiveSessions(did: string): number {
    return this.#prepared<[string, number], { n: number }>(
      'SELECT count(*) AS n FROM refresh_token WHERE did = ? AND expires_at > ?',
    ).get(did, this.#now())!.n;
  }

  disableInviteCodes(args: { codes: string[]; accounts: string[] }): void {
    this.invites.disable(args);
  }

  listInviteCodes(opts: { sort: 'recent' | 'usage'; limit: number; cursor?: string }) {
    return this.invites.list(opts);
  }

  invitedBy(did: string): InviteCodeInfo | undefined {
    return this.invites.invitedBy(did);
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

  // ---- sign-in and sessions ----

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
      // Spend the same time as a real check so probing for accounts gains nothing: a check
      // against a hash nobody's password matches costs what verifying a real one does (two
      // derivations for a password whose NFKC form differs, one otherwise).
      this.#decoyHash ??= hashPassword(randomBytes(16).toString('hex'));
      await verifyPassword(password, await this.#decoyHash);
      throw AuthRequired('Invalid identifier or password');
    }
    if (await verifyPassword(password, row.password_scrypt)) return { account: toAccount(row), appPassword: null };
    if (row.takedown_ref === null && APP_PASSWORD_RE.test(password)) {
      const appPassword = await this.appPasswords.verify(row.did, password);
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
  createSession(did: string, appPassword: AppPasswordInfo | null, takendown = false): Promise<Session> {
    return this.sessions.create(did, appPassword, takendown);
  }

  /** See Sessions.rotate: a new session for a refresh token, which keeps a grace period. */
  rotateRefreshToken(tokenId: string): Promise<(Session & { did: string }) | null> {
    return this.sessions.rotate(tokenId);
  }

  revokeRefreshToken(tokenId: string): boolean {
    return this.sessions.revoke(tokenId);
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
      this.sessions.revokeAll(did);
      this.emailTokens.delete(did, 'reset_password');
    });
  }

  // ---- app passwords ----

  createAppPassword(did: string, name: string, privileged: boolean): Promise<AppPasswordInfo & { password: string }> {
    return this.appPasswords.create(did, name, privileged);
  }

  listAppPasswords(did: string): AppPasswordInfo[] {
    return this.appPasswords.list(did);
  }

  /** Deletes the app password and every session that logged in with it. */
  revokeAppPassword(did: string, name: string): void {
    this.db.transaction(() => {
      this.appPasswords.delete(did, name);
      this.sessions.revokeForAppPassword(did, name);
    })();
  }

  verifyAppPassword(did: string, password: string): Promise<AppPasswordInfo | null> {
    return this.appPasswords.verify(did, password);
  }

  // ---- email tokens ----

  createEmailToken(did: string, purpose: EmailTokenPurpose): string {
    return this.emailTokens.create(did, purpose);
  }

  consumeEmailToken(did: string, purpose: EmailTokenPurpose, token: string, maxAgeSeconds = EMAIL_TOKEN_TTL_SECONDS) {
    this.emailTokens.consume(did, purpose, token, maxAgeSeconds);
  }

  didForEmailToken(purpose: EmailTokenPurpose, token: string, maxAgeSeconds = EMAIL_TOKEN_TTL_SECONDS): string {
    return this.emailTokens.didFor(purpose, token, maxAgeSeconds);
  }

  // ---- invite codes ----

  createInviteCodes(args: { forAccounts: string[]; count: number; useCount: number; createdBy: string }): {
    account: string;
    codes: string[];
  }[] {
    return this.invites.create(args);
  }

  ensureInviteAvailable(code: string): void {
    this.invites.ensureAvailable(code);
  }

  /** Creates the invite codes the account has earned by now (see Invites.createEarned). */
  createEarnedInviteCodes(did: string, opts: { epochMs: number; intervalMs: number }): string[] {
    const account = this.getAccount(did);
    return account ? this.invites.createEarned(did, { accountCreatedAt: account.createdAt, ...opts }) : [];
  }

  getAccountInviteCodes(did: string, opts: { includeUsed: boolean }): InviteCodeInfo[] {
    return this.invites.forAccount(did, opts);
  }

  // ---- preferences ----

  getPreferences(did: string, namespace: string): unknown[] {
    return this.preferences.get(did, namespace);
  }

  countPreferences(did: string): number {
    return this.preferences.count(did);
  }

  putPreferences(did: string, namespace: string, values: { $type: string }[], keep: (type: string) => boolean): void {
    this.preferences.put(did, namespace, values, keep);
  }
}

/** A LIKE pattern matching what starts with `text` (lower-cased), its own % and _ taken literally. */
function likePrefix(text: string): string {
  return `${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
