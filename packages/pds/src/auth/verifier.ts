/**
 * Turns a request's Authorization header into a verified identity for the method's auth mode.
 * Error names and statuses follow the reference PDS, because clients branch on them
 * (@atproto/api refreshes the session on 400 ExpiredToken, and logs out on InvalidToken).
 *
 *   access / accessFull / optionalAccess: Bearer access JWT (HS256, typ at+jwt, aud = us)
 *   refresh: Bearer refresh JWT (typ refresh+jwt); whether its id is still live is the
 *            account manager's business, since rotation is stateful
 *   admin:   HTTP Basic admin:PDS_ADMIN_PASSWORD
 *   optionalAccessOrAdmin: nothing, an access JWT or the admin's Basic credentials (sync reads,
 *            which an account's owner and the admin may make even while it is deactivated)
 *   service: Bearer service JWT signed by the issuer's #atproto key (inter-service calls,
 *            e.g. createAccount during a migration)
 */
import { type KeyObject, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { errors as joseErrors, jwtVerify } from 'jose';
import { AuthRequired, InvalidRequest, XrpcError } from '../xrpc/errors.ts';
import { type AccessScope, AuthScope, FULL_ACCESS_SCOPES, isAccessScope, STANDARD_SCOPES } from './scopes.ts';
import { verifyServiceJwt } from './service-auth.ts';
import { OAuthError } from '../oauth/errors.ts';
import type { OAuthPermissions } from '../oauth/scope.ts';
import type { OAuthProvider } from '../oauth/provider.ts';

/**
 * Methods that also accept a service JWT the account minted for this server (aud = us, lxm =
 * the method), as the reference does: the video service uploads a user's processed video with
 * the token the user's app obtained from getServiceAuth. Such a call acts with app-password
 * rights.
 */
const USER_SERVICE_AUTH_METHODS = new Set(['com.atproto.repo.uploadBlob']);

export type AuthMode =
  | 'none'
  | 'access'
  | 'accessFull'
  | 'refresh'
  | 'admin'
  | 'moderator'
  | 'optionalAccess'
  | 'optionalAccessOrAdmin'
  | 'service';

export interface NoAuth {
  type: 'none';
}
export interface AccessAuth {
  type: 'access';
  did: string;
  scope: AccessScope;
  /** Present when the call came with an OAuth token: the app and what the user let it do. */
  oauth?: { clientId: string; permissions: OAuthPermissions };
}
export interface RefreshAuth {
  type: 'refresh';
  did: string;
  /** The refresh token's jti, the key of its row in the account DB. */
  tokenId: string;
}
export interface AdminAuth {
  type: 'admin';
}
export interface ServiceAuth {
  type: 'service';
  /** The issuing account's DID (the `iss` without any #service fragment). */
  did: string;
  iss: string;
  aud: string;
  lxm: string;
}

export interface AuthResultByMode {
  none: NoAuth;
  access: AccessAuth;
  accessFull: AccessAuth;
  refresh: RefreshAuth;
  admin: AdminAuth;
  /** The admin password, or a service JWT from the configured moderation service. */
  moderator: AdminAuth | ServiceAuth;
  optionalAccess: AccessAuth | NoAuth;
  optionalAccessOrAdmin: AccessAuth | AdminAuth | NoAuth;
  service: ServiceAuth;
}
export type AuthResult = AuthResultByMode[AuthMode];

export interface AuthVerifierOptions {
  jwtKey: KeyObject;
  serviceDid: string;
  adminPassword: string;
  /**
   * The did:key an account signs service JWTs with, from its DID document. `forceRefresh`
   * asks for a fresh resolution after a signature failed (the key may have rotated).
   */
  resolveSigningKey?: (did: string, forceRefresh: boolean) => Promise<string | undefined>;
  /** The moderation service (PDS_MOD_SERVICE_DID) whose service JWTs the moderator methods take. */
  modServiceDid?: string;
}

export interface VerifyOptions {
  /** The NSID being called; service JWTs must name it in `lxm`. */
  nsid: string;
  /** Let taken-down sessions through (the few methods the reference allows them). */
  allowTakendown?: boolean;
}

export class AuthVerifier {
  readonly #jwtKey: KeyObject;
  readonly #serviceDid: string;
  readonly #adminPassword: Buffer;
  readonly #resolveSigningKey: AuthVerifierOptions['resolveSigningKey'];
  readonly #modServiceDid: string | undefined;
  #oauth: { provider: OAuthProvider; publicUrl: string } | undefined;

  constructor(opts: AuthVerifierOptions) {
    this.#jwtKey = opts.jwtKey;
    this.#serviceDid = opts.serviceDid;
    this.#adminPassword = Buffer.from(opts.adminPassword, 'utf8');
    this.#resolveSigningKey = opts.resolveSigningKey;
    this.#modServiceDid = opts.modServiceDid;
  }

  /** Accept `Authorization: DPoP` tokens this provider issued, for calls to `publicUrl`. */
  useOAuth(provider: OAuthProvider, publicUrl: string): void {
    this.#oauth = { provider, publicUrl };
  }

  async verify<M extends AuthMode>(mode: M, req: IncomingMessage, opts: VerifyOptions): Promise<AuthResultByMode[M]> {
    return (await this.#verify(mode, req, opts)) as AuthResultByMode[M];
  }

  async #verify(mode: AuthMode, req: IncomingMessage, opts: VerifyOptions): Promise<AuthResult> {
    switch (mode) {
      case 'none':
        return { type: 'none' };
      case 'access':
        if (USER_SERVICE_AUTH_METHODS.has(opts.nsid) && isServiceJwt(req)) {
          const service = await this.service(req, opts.nsid);
          return { type: 'access', did: service.did, scope: AuthScope.AppPass };
        }
        return this.access(req, opts.allowTakendown ? [...STANDARD_SCOPES, AuthScope.Takendown] : STANDARD_SCOPES);
      case 'accessFull':
        return this.access(req, FULL_ACCESS_SCOPES);
      case 'optionalAccess':
        if (!req.headers.authorization) return { type: 'none' };
        return this.access(req, opts.allowTakendown ? [...STANDARD_SCOPES, AuthScope.Takendown] : STANDARD_SCOPES);
      case 'optionalAccessOrAdmin':
        if (!req.headers.authorization) return { type: 'none' };
        if (parseAuthorization(req)?.type === 'basic') return this.admin(req);
        return this.access(req, opts.allowTakendown ? [...STANDARD_SCOPES, AuthScope.Takendown] : STANDARD_SCOPES);
      case 'refresh':
        return this.refresh(req);
      case 'admin':
        return this.admin(req);
      case 'moderator':
        return this.moderator(req, opts.nsid);
      case 'service':
        return this.service(req, opts.nsid);
    }
  }

  async access(req: IncomingMessage, scopes: readonly AccessScope[]): Promise<AccessAuth> {
    const credentials = parseAuthorization(req);
    if (credentials?.type === 'dpop') {
      const auth = await this.#oauthAccess(req, credentials.token);
      // A taken-down account's apps keep only what its own sessions keep.
      if (auth.takendown && !scopes.includes(AuthScope.Takendown)) {
        throw AuthRequired('Account has been taken down', 'AccountTakedown');
      }
      return auth.takendown ? { ...auth.access, scope: AuthScope.Takendown } : auth.access;
    }
    const payload = await this.#verifySessionJwt(req, 'at+jwt');
    const scope = payload.scope;
    if (!isAccessScope(scope) || !scopes.includes(scope)) throw InvalidRequest('Bad token scope', 'InvalidToken');
    return { type: 'access', did: payload.sub, scope };
  }

  /**
   * An OAuth access token with its DPoP proof. What the token allows is checked per call
   * (oauth/authorize-call.ts); here only that it is genuine, live and presented by its holder.
   */
  async #oauthAccess(req: IncomingMessage, token: string): Promise<{ access: AccessAuth; takendown: boolean }> {
    const oauth = this.#oauth;
    if (!oauth) throw InvalidRequest('Unexpected authorization type', 'InvalidToken');
    const path = (req.url ?? '/').split('?')[0]!;
    try {
      const verified = await oauth.provider.verifyAccess(token, {
        header: req.headers.dpop,
        method: req.method ?? 'GET',
        url: `${oauth.publicUrl}${path}`,
      });
      return {
        access: {
          type: 'access',
          did: verified.did,
          scope: AuthScope.Access,
          oauth: { clientId: verified.clientId, permissions: verified.permissions },
        },
        takendown: verified.takendown,
      };
    } catch (err) {
      if (err instanceof OAuthError) throw new XrpcError(err.status, err.error, err.message, err.headers);
      throw err;
    }
  }

  /** `allowExpired`: logging out must work even with a refresh token past its expiry. */
  async refresh(req: IncomingMessage, opts: { allowExpired?: boolean } = {}): Promise<RefreshAuth> {
    const payload = await this.#verifySessionJwt(req, 'refresh+jwt', opts.allowExpired);
    if (payload.scope !== AuthScope.Refresh) throw InvalidRequest('Bad token scope', 'InvalidToken');
    if (typeof payload.jti !== 'string' || payload.jti === '') {
      throw AuthRequired('Unexpected missing refresh token id', 'MissingTokenId');
    }
    return { type: 'refresh', did: payload.sub, tokenId: payload.jti };
  }

  admin(req: IncomingMessage): AdminAuth {
    const credentials = parseAuthorization(req);
    if (!credentials || credentials.type !== 'basic') throw AuthRequired();
    const decoded = Buffer.from(credentials.token, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw AuthRequired();
    const username = decoded.slice(0, colon);
    const password = Buffer.from(decoded.slice(colon + 1), 'utf8');
    const passwordOk = password.length === this.#adminPassword.length && timingSafeEqual(password, this.#adminPassword);
    if (username !== 'admin' || !passwordOk) throw AuthRequired();
    return { type: 'admin' };
  }

  /**
   * The reference's moderator check: Basic credentials are the admin's; a bearer token must be
   * a service JWT issued by the moderation service (its DID, or its #atproto_labeler).
   */
  async moderator(req: IncomingMessage, nsid: string): Promise<AdminAuth | ServiceAuth> {
    if (parseAuthorization(req)?.type !== 'bearer') return this.admin(req);
    const modService = this.#modServiceDid;
    if (!modService) throw AuthRequired('Untrusted issuer', 'UntrustedIss');
    const service = await this.service(req, nsid);
    if (service.iss !== modService && service.iss !== `${modService}#atproto_labeler`) {
      throw AuthRequired('Untrusted issuer', 'UntrustedIss');
    }
    return service;
  }

  async service(req: IncomingMessage, nsid: string): Promise<ServiceAuth> {
    const credentials = parseAuthorization(req);
    if (!credentials || credentials.type !== 'bearer') throw AuthRequired('missing jwt', 'MissingJwt');
    const resolveSigningKey = this.#resolveSigningKey;
    if (!resolveSigningKey) throw AuthRequired('could not resolve iss did');
    const verified = await verifyServiceJwt(credentials.token, {
      serviceDid: this.#serviceDid,
      nsid,
      resolveSigningKey,
    });
    return { type: 'service', did: verified.did, iss: verified.iss, aud: verified.aud, lxm: verified.lxm };
  }

  async #verifySessionJwt(
    req: IncomingMessage,
    typ: 'at+jwt' | 'refresh+jwt',
    allowExpired = false,
  ): Promise<{ sub: string; scope: unknown; jti: unknown }> {
    const credentials = parseAuthorization(req);
    if (!credentials) throw AuthRequired(undefined, 'AuthMissing');
    if (credentials.type !== 'bearer') throw InvalidRequest('Unexpected authorization type', 'InvalidToken');
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(credentials.token, this.#jwtKey, {
        typ,
        audience: this.#serviceDid,
        algorithms: ['HS256'],
        ...(allowExpired ? { clockTolerance: Number.POSITIVE_INFINITY } : {}),
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw InvalidRequest('Token has expired', 'ExpiredToken');
      throw InvalidRequest('Token could not be verified', 'InvalidToken');
    }
    // Service tokens (lxm) and proof-of-possession tokens (cnf) never act as sessions.
    if (payload.lxm !== undefined || payload.cnf !== undefined) throw InvalidRequest('Malformed token', 'InvalidToken');
    if (typeof payload.sub !== 'string' || !payload.sub.startsWith('did:')) {
      throw InvalidRequest('Malformed token', 'InvalidToken');
    }
    return { sub: payload.sub, scope: payload.scope, jti: payload.jti };
  }
}

/**
 * Whether the caller is the account `did` itself or the admin: they may read the account's
 * repository and blobs while it is deactivated or taken down; everyone else may not.
 */
export function isOwnerOrAdmin(auth: AuthResult, did: string): boolean {
  return auth.type === 'admin' || (auth.type === 'access' && auth.did === did);
}

/** A Bearer token whose payload names a method (lxm): a service JWT, never a session token. */
function isServiceJwt(req: IncomingMessage): boolean {
  const header = req.headers.authorization;
  if (!header?.startsWith('Bearer ')) return false;
  const payload = header.slice('Bearer '.length).split('.')[1];
  if (!payload) return false;
  try {
    const decoded: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return typeof decoded === 'object' && decoded !== null && 'lxm' in decoded;
  } catch {
    return false;
  }
}

interface Credentials {
  type: 'bearer' | 'basic' | 'dpop';
  token: string;
}

function parseAuthorization(req: IncomingMessage): Credentials | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const parts = header.split(' ');
  if (parts.length !== 2 || !parts[1]) throw InvalidRequest('Malformed authorization header', 'InvalidToken');
  const type = parts[0]!.toLowerCase();
  if (type === 'bearer' || type === 'basic' || type === 'dpop') return { type, token: parts[1] };
  throw InvalidRequest(`Unsupported authorization type: ${parts[0]}`, 'InvalidToken');
}
