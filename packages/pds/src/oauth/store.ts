/**
 * OAuth's tables in the account database (migration 4 in account/db.ts): pushed requests and
 * their codes, token families, used refresh tokens, authorized apps. This module writes only
 * these tables. Codes and refresh tokens are kept as SHA-256 hashes, so a copy of the database
 * gives nobody a usable credential.
 */
import { createHash } from 'node:crypto';
import type { AccountDb } from '../account/db.ts';
import { PreparedStatements } from '../account/tables.ts';

export interface AuthorizationParameters {
  redirect_uri: string;
  scope: string;
  state: string;
  code_challenge: string;
  response_mode: 'query' | 'fragment';
  login_hint?: string;
}

export interface AuthorizationRequest {
  id: string;
  clientId: string;
  parameters: AuthorizationParameters;
  dpopJkt: string | null;
  expiresAt: number;
  did: string | null;
}

export interface TokenFamily {
  id: string;
  did: string;
  clientId: string;
  scope: string;
  dpopJkt: string;
  accessJti: string;
  createdAt: number;
  updatedAt: number;
  expiresAt: number;
}

export interface AuthorizedClient {
  clientId: string;
  clientName: string | null;
  scope: string;
  createdAt: number;
  updatedAt: number;
}

interface RequestRow {
  id: string;
  client_id: string;
  parameters_json: string;
  dpop_jkt: string | null;
  expires_at: number;
  did: string | null;
}

interface TokenRow {
  id: string;
  did: string;
  client_id: string;
  scope: string;
  dpop_jkt: string;
  access_jti: string;
  created_at: number;
  updated_at: number;
  expires_at: number;
}

export function secretHash(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

function toRequest(row: RequestRow): AuthorizationRequest {
  return {
    id: row.id,
    clientId: row.client_id,
    parameters: JSON.parse(row.parameters_json) as AuthorizationParameters,
    dpopJkt: row.dpop_jkt,
    expiresAt: row.expires_at,
    did: row.did,
  };
}

function toFamily(row: TokenRow): TokenFamily {
  return {
    id: row.id,
    did: row.did,
    clientId: row.client_id,
    scope: row.scope,
    dpopJkt: row.dpop_jkt,
    accessJti: row.access_jti,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    expiresAt: row.expires_at,
  };
}

export class OAuthStore {
  readonly #db: AccountDb;
  readonly #statements: PreparedStatements;

  constructor(db: AccountDb) {
    this.#db = db;
    this.#statements = new PreparedStatements(db);
  }

  #q<P extends unknown[] = unknown[], R = unknown>(sql: string) {
    return this.#statements.get<P, R>(sql);
  }

  createRequest(r: Omit<AuthorizationRequest, 'did'>): void {
    this.#q('DELETE FROM oauth_request WHERE expires_at < ?').run(Math.floor(Date.now() / 1000) - 3600);
    this.#q(
      'INSERT INTO oauth_request (id, client_id, parameters_json, dpop_jkt, expires_at) VALUES (?, ?, ?, ?, ?)',
    ).run(r.id, r.clientId, JSON.stringify(r.parameters), r.dpopJkt, r.expiresAt);
  }

  getRequest(id: string): AuthorizationRequest | undefined {
    const row = this.#q<[string], RequestRow>('SELECT * FROM oauth_request WHERE id = ?').get(id);
    return row ? toRequest(row) : undefined;
  }

  extendRequest(id: string, expiresAt: number): void {
    this.#q('UPDATE oauth_request SET expires_at = ? WHERE id = ?').run(expiresAt, id);
  }

  setRequestAccount(id: string, did: string): void {
    this.#q('UPDATE oauth_request SET did = ? WHERE id = ? AND code_hash IS NULL').run(did, id);
  }

  /** Issues the request's code (once: a request that already has one gets no other). */
  setRequestCode(id: string, code: string, expiresAt: number): boolean {
    const result = this.#q(
      'UPDATE oauth_request SET code_hash = ?, code_expires_at = ? WHERE id = ? AND code_hash IS NULL AND did IS NOT NULL',
    ).run(secretHash(code), expiresAt, id);
    return result.changes === 1;
  }

  deleteRequest(id: string): void {
    this.#q('DELETE FROM oauth_request WHERE id = ?').run(id);
  }

  /** Takes the request a code was issued for, deleting it: a code is good once. */
  consumeCode(code: string): (AuthorizationRequest & { codeExpiresAt: number }) | undefined {
    return this.#db.transaction(() => {
      const row = this.#q<[string], RequestRow & { code_expires_at: number }>(
        'SELECT * FROM oauth_request WHERE code_hash = ?',
      ).get(secretHash(code));
      if (!row) return undefined;
      this.#q('DELETE FROM oauth_request WHERE id = ?').run(row.id);
      return { ...toRequest(row), codeExpiresAt: row.code_expires_at };
    })();
  }

  /** Revokes the tokens a code was exchanged for (the code was presented a second time). */
  revokeByCode(code: string): boolean {
    return this.#q('DELETE FROM oauth_token WHERE code_hash = ?').run(secretHash(code)).changes > 0;
  }

  createFamily(f: TokenFamily, refreshToken: string, code: string): void {
    // Families past their refresh token's life can never be used again.
    this.#q('DELETE FROM oauth_token WHERE expires_at < ?').run(f.createdAt);
    this.#q(
      `INSERT INTO oauth_token (id, did, client_id, scope, dpop_jkt, access_jti, refresh_hash, code_hash,
         created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      f.id,
      f.did,
      f.clientId,
      f.scope,
      f.dpopJkt,
      f.accessJti,
      secretHash(refreshToken),
      secretHash(code),
      f.createdAt,
      f.updatedAt,
      f.expiresAt,
    );
  }

  /** The family whose current access token has id `jti` (a refreshed-away token has none). */
  familyByAccessJti(jti: string): TokenFamily | undefined {
    const row = this.#q<[string], TokenRow>('SELECT * FROM oauth_token WHERE access_jti = ?').get(jti);
    return row ? toFamily(row) : undefined;
  }

  /**
   * The family a refresh token belongs to. `replayed` when the token was rotated away already:
   * someone holds a copy, so the caller revokes the family.
   */
  findByRefresh(refreshToken: string): { family: TokenFamily; replayed: boolean } | undefined {
    const hash = secretHash(refreshToken);
    const live = this.#q<[string], TokenRow>('SELECT * FROM oauth_token WHERE refresh_hash = ?').get(hash);
    if (live) return { family: toFamily(live), replayed: false };
    const used = this.#q<[string], TokenRow>(
      'SELECT t.* FROM oauth_used_refresh u JOIN oauth_token t ON t.id = u.token_id WHERE u.refresh_hash = ?',
    ).get(hash);
    return used ? { family: toFamily(used), replayed: true } : undefined;
  }

  /** Swaps the family's refresh token and access token id, in one transaction. */
  rotate(id: string, oldRefresh: string, newRefresh: string, accessJti: string, now: number): boolean {
    return this.#db.transaction(() => {
      const changed = this.#q(
        'UPDATE oauth_token SET refresh_hash = ?, access_jti = ?, updated_at = ? WHERE id = ? AND refresh_hash = ?',
      ).run(secretHash(newRefresh), accessJti, now, id, secretHash(oldRefresh)).changes;
      if (changed !== 1) return false;
      this.#q('INSERT INTO oauth_used_refresh (refresh_hash, token_id) VALUES (?, ?)').run(secretHash(oldRefresh), id);
      return true;
    })();
  }

  revokeFamily(id: string): void {
    this.#q('DELETE FROM oauth_token WHERE id = ?').run(id);
  }

  rememberClient(did: string, clientId: string, clientName: string | null, scope: string, now: number): void {
    this.#q(
      `INSERT INTO oauth_authorized_client (did, client_id, client_name, scope, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (did, client_id) DO UPDATE SET client_name = excluded.client_name, scope = excluded.scope,
         updated_at = excluded.updated_at`,
    ).run(did, clientId, clientName, scope, now, now);
  }

  listClients(did: string): AuthorizedClient[] {
    const rows = this.#q<
      [string],
      { client_id: string; client_name: string | null; scope: string; created_at: number; updated_at: number }
    >('SELECT * FROM oauth_authorized_client WHERE did = ? ORDER BY updated_at DESC').all(did);
    return rows.map((r) => ({
      clientId: r.client_id,
      clientName: r.client_name,
      scope: r.scope,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    }));
  }

  /** Forgets an app: its authorization and every token it holds for the account. */
  revokeClient(did: string, clientId: string): boolean {
    return this.#db.transaction(() => {
      const tokens = this.#q('DELETE FROM oauth_token WHERE did = ? AND client_id = ?').run(did, clientId).changes;
      const clients = this.#q('DELETE FROM oauth_authorized_client WHERE did = ? AND client_id = ?').run(
        did,
        clientId,
      ).changes;
      return tokens + clients > 0;
    })();
  }
}
