/**
 * Session JWTs: HS256 with PDS_JWT_SECRET, shaped exactly like the reference's so a client
 * (and an operator moving an existing pds.env over) sees no difference.
 *   access:  typ at+jwt,      {scope, sub: did, aud: service DID, iat, exp = +2 h}
 *   refresh: typ refresh+jwt, {scope: com.atproto.refresh, sub, aud, jti, iat, exp = +90 days}
 */
import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { type AccessScope, AuthScope } from './scopes.ts';

export const ACCESS_TOKEN_TTL_SECONDS = 2 * 60 * 60;
export const REFRESH_TOKEN_TTL_SECONDS = 90 * 24 * 60 * 60;
/** After a refresh token is used, it keeps working this long, so a retried refresh succeeds. */
export const REFRESH_GRACE_SECONDS = 2 * 60 * 60;

export function jwtKeyFromSecret(secret: string): KeyObject {
  return createSecretKey(Buffer.from(secret, 'utf8'));
}

export interface SessionTokens {
  accessJwt: string;
  refreshJwt: string;
  /** The refresh token's id and expiry, which the account DB stores. */
  refreshId: string;
  refreshExpiresAt: number;
}

export class TokenIssuer {
  readonly #key: KeyObject;
  readonly #serviceDid: string;
  constructor(key: KeyObject, serviceDid: string) {
    this.#key = key;
    this.#serviceDid = serviceDid;
  }

  async createAccessToken(
    did: string,
    scope: AccessScope,
    nowSeconds = Math.floor(Date.now() / 1000),
  ): Promise<string> {
    return new SignJWT({ scope })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .setSubject(did)
      .setAudience(this.#serviceDid)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + ACCESS_TOKEN_TTL_SECONDS)
      .sign(this.#key);
  }

  async createRefreshToken(
    did: string,
    jti = newRefreshTokenId(),
    nowSeconds = Math.floor(Date.now() / 1000),
  ): Promise<{ jwt: string; jti: string; expiresAt: number }> {
    const expiresAt = nowSeconds + REFRESH_TOKEN_TTL_SECONDS;
    const jwt = await new SignJWT({ scope: AuthScope.Refresh })
      .setProtectedHeader({ alg: 'HS256', typ: 'refresh+jwt' })
      .setSubject(did)
      .setAudience(this.#serviceDid)
      .setJti(jti)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(expiresAt)
      .sign(this.#key);
    return { jwt, jti, expiresAt };
  }

  async createSessionTokens(did: string, scope: AccessScope): Promise<SessionTokens> {
    const now = Math.floor(Date.now() / 1000);
    const accessJwt = await this.createAccessToken(did, scope, now);
    const refresh = await this.createRefreshToken(did, newRefreshTokenId(), now);
    return { accessJwt, refreshJwt: refresh.jwt, refreshId: refresh.jti, refreshExpiresAt: refresh.expiresAt };
  }
}

export function newRefreshTokenId(): string {
  return randomBytes(32).toString('base64url');
}
