/**
 * Sessions: the stored refresh tokens behind them, their rotation with the reference's grace
 * period, and their revocation. Access tokens are not stored; they live out their two hours.
 */
import { randomBytes } from 'node:crypto';
import { type AccessScope, AuthScope } from '../auth/scopes.ts';
import { REFRESH_GRACE_SECONDS, type TokenIssuer } from '../auth/tokens.ts';
import type { AppPasswordInfo, AppPasswords } from './app-passwords.ts';
import type { AccountTables } from './tables.ts';

export interface Session {
  accessJwt: string;
  refreshJwt: string;
  /** The access token's scope (decides, e.g., whether the email may be shown). */
  scope: AccessScope;
}

interface RefreshRow {
  id: string;
  did: string;
  expires_at: number;
  app_password_name: string | null;
  next_id: string | null;
}

export function scopeFor(appPassword: AppPasswordInfo | null): AccessScope {
  if (!appPassword) return AuthScope.Access;
  return appPassword.privileged ? AuthScope.AppPassPrivileged : AuthScope.AppPass;
}

export class Sessions {
  readonly #t: AccountTables;
  readonly #tokens: TokenIssuer;
  readonly #appPasswords: AppPasswords;
  /** Whether the account is taken down (its refreshed sessions keep only the narrow scope). */
  readonly #takendown: (did: string) => boolean;

  constructor(
    tables: AccountTables,
    tokens: TokenIssuer,
    appPasswords: AppPasswords,
    takendown: (did: string) => boolean,
  ) {
    this.#t = tables;
    this.#tokens = tokens;
    this.#appPasswords = appPasswords;
    this.#takendown = takendown;
  }

  /** A new session: access JWT plus a stored refresh token (linked to the app password used, if any). */
  async create(did: string, appPassword: AppPasswordInfo | null, takendown = false): Promise<Session> {
    const scope = takendown ? AuthScope.Takendown : scopeFor(appPassword);
    const tokens = await this.#tokens.createSessionTokens(did, scope);
    this.#t
      .prepared('INSERT INTO refresh_token (id, did, expires_at, app_password_name) VALUES (?, ?, ?, ?)')
      .run(tokens.refreshId, did, tokens.refreshExpiresAt, appPassword?.name ?? null);
    return { accessJwt: tokens.accessJwt, refreshJwt: tokens.refreshJwt, scope };
  }

  /**
   * Exchanges a refresh token for a new session. The old token stays usable for a grace
   * period (a client whose response got lost may retry), and every retry within it yields the
   * same successor id, so a token never forks into many live sessions. Past the grace period,
   * or once revoked, the token is refused with ExpiredToken.
   */
  async rotate(tokenId: string): Promise<(Session & { did: string }) | null> {
    const now = this.#t.now();
    const row = this.#t.prepared<[string], RefreshRow>('SELECT * FROM refresh_token WHERE id = ?').get(tokenId);
    if (!row) return null;
    this.#t.prepared('DELETE FROM refresh_token WHERE did = ? AND expires_at <= ?').run(row.did, now);
    const graceEnd = Math.min(now + REFRESH_GRACE_SECONDS, row.expires_at);
    if (graceEnd <= now || row.expires_at <= now) return null;
    const appPassword = row.app_password_name ? this.#appPasswords.get(row.did, row.app_password_name) : null;
    if (row.app_password_name && !appPassword) return null;
    const nextId = row.next_id ?? randomBytes(32).toString('base64url');
    const scope = this.#takendown(row.did) ? AuthScope.Takendown : scopeFor(appPassword);
    const accessJwt = await this.#tokens.createAccessToken(row.did, scope, now);
    const refresh = await this.#tokens.createRefreshToken(row.did, nextId, now);
    const stored = this.#t.db.transaction(() => {
      // Another rotation of the same token may have chosen its successor while this one signed:
      // then start again and hand out that successor, never a second one.
      const claimed = this.#t
        .prepared(
          'UPDATE refresh_token SET expires_at = ?, next_id = ? WHERE id = ? AND (next_id IS NULL OR next_id = ?)',
        )
        .run(graceEnd, nextId, tokenId, nextId).changes;
      if (claimed === 0) return false;
      this.#t
        .prepared(
          // A retry finds the successor stored already, perhaps rotated in its turn: its row,
          // grace period included, stays as it is.
          `INSERT INTO refresh_token (id, did, expires_at, app_password_name) VALUES (?, ?, ?, ?)
           ON CONFLICT (id) DO NOTHING`,
        )
        .run(nextId, row.did, refresh.expiresAt, row.app_password_name);
      return true;
    })();
    if (!stored) return this.rotate(tokenId);
    return { did: row.did, accessJwt, refreshJwt: refresh.jwt, scope };
  }

  revoke(tokenId: string): boolean {
    return this.#t.prepared('DELETE FROM refresh_token WHERE id = ?').run(tokenId).changes > 0;
  }

  /** Ends every session of the account. */
  revokeAll(did: string): void {
    this.#t.prepared('DELETE FROM refresh_token WHERE did = ?').run(did);
  }

  /** Ends the sessions that signed in with the app password `name`. */
  revokeForAppPassword(did: string, name: string): void {
    this.#t.prepared('DELETE FROM refresh_token WHERE did = ? AND app_password_name = ?').run(did, name);
  }
}
