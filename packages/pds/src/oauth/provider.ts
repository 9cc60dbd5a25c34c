/**
 * The authorization server and the resource server's token check, for the atproto OAuth
 * profile: pushed authorization requests (required, PKCE S256 only), the code issued once the
 * user signed in and agreed on the page (oauth/pages.ts), the token endpoint's two grants with
 * DPoP-bound tokens and rotated refresh tokens, revocation, and the verification of
 * `Authorization: DPoP` calls. Every endpoint's input is a plain record of strings (form or
 * JSON body); every refusal is an OAuthError with the spec's error code.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { Account, AccountManager } from '../account/account-manager.ts';
import type { PdsConfig } from '../config.ts';
import { type Client, type ClientResolver, isRegisteredRedirect } from './clients.ts';
import type { DpopVerifier } from './dpop.ts';
import { invalidClient, invalidGrant, invalidRequest, invalidScope, OAuthError } from './errors.ts';
import type { OAuthKeys } from './keys.ts';
import { isKnownScope, OAuthPermissions } from './scope.ts';
import type { AuthorizationRequest, OAuthStore, TokenFamily } from './store.ts';

const REQUEST_URI_PREFIX = 'urn:ietf:params:oauth:request_uri:';
const PAR_TTL_S = 300;
/** Once the page opened a request, the user has this long to sign in and decide. */
const PAGE_TTL_S = 900;
const CODE_TTL_S = 60;
const ACCESS_TTL_S = 60 * 60;
const PUBLIC_REFRESH_TTL_S = 14 * 24 * 60 * 60;
const CONFIDENTIAL_REFRESH_TTL_S = 180 * 24 * 60 * 60;
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const SUPPORTED_SCOPES = ['atproto', 'transition:generic', 'transition:chat.bsky', 'transition:email'];

export type Params = Record<string, string | undefined>;

export interface DpopContext {
  header: string | string[] | undefined;
  method: string;
  url: string;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'DPoP';
  expires_in: number;
  refresh_token: string;
  scope: string;
  sub: string;
}

export interface VerifiedAccess {
  did: string;
  clientId: string;
  permissions: OAuthPermissions;
  /** The account was taken down after the token was issued. */
  takendown: boolean;
}

export interface OAuthProviderDeps {
  config: PdsConfig;
  accountManager: AccountManager;
  keys: OAuthKeys;
  store: OAuthStore;
  clients: ClientResolver;
  dpop: DpopVerifier;
}

const now = () => Math.floor(Date.now() / 1000);
const newId = (prefix: string) => `${prefix}-${randomBytes(24).toString('base64url')}`;

export class OAuthProvider {
  readonly #d: OAuthProviderDeps;
  readonly issuer: string;
  readonly #seenAssertions = new Map<string, number>();

  constructor(deps: OAuthProviderDeps) {
    this.#d = deps;
    this.issuer = deps.config.publicUrl;
  }

  get dpop(): DpopVerifier {
    return this.#d.dpop;
  }
  get store(): OAuthStore {
    return this.#d.store;
  }

  authorizationServerMetadata(): Record<string, unknown> {
    const i = this.issuer;
    return {
      issuer: i,
      request_parameter_supported: false,
      request_uri_parameter_supported: true,
      require_request_uri_registration: true,
      scopes_supported: SUPPORTED_SCOPES,
      subject_types_supported: ['public'],
      response_types_supported: ['code'],
      response_modes_supported: ['query', 'fragment'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      ui_locales_supported: ['en-US'],
      display_values_supported: ['page'],
      authorization_response_iss_parameter_supported: true,
      request_object_signing_alg_values_supported: [],
      token_endpoint_auth_methods_supported: ['none', 'private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['ES256', 'ES256K', 'ES384', 'ES512', 'RS256', 'PS256'],
      revocation_endpoint: `${i}/oauth/revoke`,
      pushed_authorization_request_endpoint: `${i}/oauth/par`,
      require_pushed_authorization_requests: true,
      authorization_endpoint: `${i}/oauth/authorize`,
      token_endpoint: `${i}/oauth/token`,
      jwks_uri: `${i}/oauth/jwks`,
      dpop_signing_alg_values_supported: ['ES256', 'ES256K', 'ES384', 'ES512', 'EdDSA', 'RS256', 'PS256'],
      client_id_metadata_document_supported: true,
      protected_resources: [i],
    };
  }

  protectedResourceMetadata(): Record<string, unknown> {
    return {
      resource: this.issuer,
      authorization_servers: [this.issuer],
      scopes_supported: [],
      bearer_methods_supported: ['header'],
      resource_documentation: 'https://atproto.com',
    };
  }

  jwks(): { keys: unknown[] } {
    return { keys: [this.#d.keys.publicJwk] };
  }

  // --- Pushed authorization requests -----------------------------------------------------

  async par(p: Params, dpop: DpopContext): Promise<{ request_uri: string; expires_in: number }> {
    const client = await this.#authenticateClient(p);
    const proof = dpop.header === undefined ? undefined : await this.#d.dpop.verify(dpop.header, dpop);
    if (p.request !== undefined) throw invalidRequest('request objects are not supported');
    if (p.response_type !== 'code') throw new OAuthError('unsupported_response_type', 'response_type must be "code"');
    if (p.code_challenge_method !== 'S256') throw invalidRequest('code_challenge_method must be S256');
    if (!p.code_challenge || !/^[A-Za-z0-9_-]{43}$/.test(p.code_challenge)) {
      throw invalidRequest('code_challenge must be a base64url SHA-256 hash (43 characters)');
    }
    if (!p.state) throw invalidRequest('state is required');
    if (p.dpop_jkt && proof && p.dpop_jkt !== proof.jkt) throw invalidRequest('dpop_jkt does not match the DPoP proof');
    const redirectUri =
      p.redirect_uri ?? (client.metadata.redirect_uris.length === 1 ? client.metadata.redirect_uris[0] : undefined);
    if (!redirectUri) throw invalidRequest('redirect_uri is required');
    if (!isRegisteredRedirect(client, redirectUri)) {
      throw invalidRequest(`redirect_uri ${redirectUri} is not one the client registered`);
    }
    const scope = (p.scope ?? client.metadata.scope).split(' ').filter(Boolean);
    if (!scope.includes('atproto')) throw invalidScope('scope must include "atproto"');
    const allowed = new Set(client.metadata.scope.split(' '));
    for (const s of scope) {
      if (!isKnownScope(s)) throw invalidScope(`scope "${s}" is not supported`);
      if (!allowed.has(s)) throw invalidScope(`scope "${s}" is not in the client's registered scope`);
    }
    const responseMode = p.response_mode ?? 'query';
    if (responseMode !== 'query' && responseMode !== 'fragment')
      throw invalidRequest('response_mode must be query or fragment');
    const id = newId('req');
    this.#d.store.createRequest({
      id,
      clientId: client.id,
      parameters: {
        redirect_uri: redirectUri,
        scope: [...new Set(scope)].join(' '),
        state: p.state,
        code_challenge: p.code_challenge,
        response_mode: responseMode,
        ...(p.login_hint ? { login_hint: p.login_hint.slice(0, 256) } : {}),
      },
      dpopJkt: p.dpop_jkt ?? proof?.jkt ?? null,
      expiresAt: now() + PAR_TTL_S,
    });
    return { request_uri: REQUEST_URI_PREFIX + id, expires_in: PAR_TTL_S };
  }

  /** The request a page URL names, still valid and for that client. */
  async openRequest(
    requestUri: string | undefined | null,
    clientId: string | undefined | null,
  ): Promise<{
    request: AuthorizationRequest;
    client: Client;
  }> {
    if (!requestUri?.startsWith(REQUEST_URI_PREFIX))
      throw invalidRequest('request_uri is missing or not one this server issued');
    const request = this.#d.store.getRequest(requestUri.slice(REQUEST_URI_PREFIX.length));
    if (!request || request.expiresAt < now()) throw invalidRequest('This sign-in request has expired');
    if (clientId && clientId !== request.clientId) throw invalidRequest('client_id does not match the request');
    const client = await this.#d.clients.resolve(request.clientId);
    return { request, client };
  }

  /** The page opened the request: the user now has a while to sign in and decide. */
  extendForPage(request: AuthorizationRequest): void {
    if (request.expiresAt < now() + PAGE_TTL_S) this.#d.store.extendRequest(request.id, now() + PAGE_TTL_S);
  }

  static requestUriOf(request: AuthorizationRequest): string {
    return REQUEST_URI_PREFIX + request.id;
  }

  bindAccount(request: AuthorizationRequest, account: Account): void {
    this.#d.store.setRequestAccount(request.id, account.did);
  }

  /** The user agreed: a code for the client, sent to its redirect URI. */
  approve(request: AuthorizationRequest, client: Client, did: string): string {
    const code = newId('cod');
    this.#d.store.setRequestAccount(request.id, did);
    if (!this.#d.store.setRequestCode(request.id, code, now() + CODE_TTL_S)) {
      throw invalidRequest('This sign-in request was already answered');
    }
    this.#d.store.rememberClient(did, client.id, client.metadata.client_name ?? null, request.parameters.scope, now());
    return this.#redirect(request, { code });
  }

  /** The user declined: the client hears access_denied. */
  deny(request: AuthorizationRequest): string {
    this.#d.store.deleteRequest(request.id);
    return this.#redirect(request, { error: 'access_denied', error_description: 'The user declined' });
  }

  #redirect(request: AuthorizationRequest, values: Record<string, string>): string {
    const { redirect_uri, state, response_mode } = request.parameters;
    const params = new URLSearchParams({ ...values, state, iss: this.issuer });
    const url = new URL(redirect_uri);
    if (response_mode === 'fragment') url.hash = params.toString();
    else for (const [k, v] of params) url.searchParams.append(k, v);
    return url.href;
  }

  // --- Token endpoint --------------------------------------------------------------------

  async token(p: Params, dpop: DpopContext): Promise<TokenResponse> {
    const client = await this.#authenticateClient(p);
    const proof = await this.#d.dpop.verify(dpop.header, dpop);
    if (p.grant_type === 'authorization_code') return this.#exchangeCode(p, client, proof.jkt);
    if (p.grant_type === 'refresh_token') return this.#refresh(p, client, proof.jkt);
    throw new OAuthError('unsupported_grant_type', 'grant_type must be authorization_code or refresh_token');
  }

  async #exchangeCode(p: Params, client: Client, jkt: string): Promise<TokenResponse> {
    if (!p.code) throw invalidRequest('code is required');
    const request = this.#d.store.consumeCode(p.code);
    if (!request) {
      // A code shown twice: whoever holds the first exchange's tokens may not be the client.
      this.#d.store.revokeByCode(p.code);
      throw invalidGrant('Invalid code (unknown, already used, or expired)');
    }
    if (request.codeExpiresAt < now()) throw invalidGrant('The code has expired');
    if (request.clientId !== client.id) throw invalidGrant('The code was issued to another client');
    if (p.redirect_uri !== request.parameters.redirect_uri)
      throw invalidGrant('redirect_uri does not match the request');
    if (!p.code_verifier || !/^[A-Za-z0-9._~-]{43,128}$/.test(p.code_verifier)) {
      throw invalidGrant('code_verifier is missing or malformed');
    }
    const challenge = createHash('sha256').update(p.code_verifier).digest('base64url');
    if (!sameString(challenge, request.parameters.code_challenge)) throw invalidGrant('Invalid code_verifier (PKCE)');
    if (request.dpopJkt && request.dpopJkt !== jkt)
      throw invalidGrant('DPoP key does not match the one used for the request');
    const did = request.did!;
    const account = this.#d.accountManager.getAccount(did);
    if (!account || account.takedownRef) throw invalidGrant('The account is not available');
    const t = now();
    const refreshToken = newId('ref');
    const family: TokenFamily = {
      id: newId('tok'),
      did,
      clientId: client.id,
      scope: request.parameters.scope,
      dpopJkt: jkt,
      accessJti: newId('at'),
      createdAt: t,
      updatedAt: t,
      expiresAt:
        t + (client.metadata.token_endpoint_auth_method === 'none' ? PUBLIC_REFRESH_TTL_S : CONFIDENTIAL_REFRESH_TTL_S),
    };
    this.#d.store.createFamily(family, refreshToken, p.code);
    return this.#tokenResponse(family, refreshToken);
  }

  async #refresh(p: Params, client: Client, jkt: string): Promise<TokenResponse> {
    if (!p.refresh_token) throw invalidRequest('refresh_token is required');
    const found = this.#d.store.findByRefresh(p.refresh_token);
    if (!found) throw invalidGrant('Invalid refresh token');
    const { family, replayed } = found;
    if (replayed) {
      // An old refresh token came back: a copy exists somewhere. End the whole session.
      this.#d.store.revokeFamily(family.id);
      throw invalidGrant('Refresh token was already used; the session has been revoked');
    }
    if (family.clientId !== client.id) throw invalidGrant('Refresh token was issued to another client');
    if (family.dpopJkt !== jkt) throw invalidGrant('DPoP key does not match the one the token is bound to');
    if (family.expiresAt < now()) {
      this.#d.store.revokeFamily(family.id);
      throw invalidGrant('Refresh token has expired');
    }
    const next = newId('ref');
    const accessJti = newId('at');
    if (!this.#d.store.rotate(family.id, p.refresh_token, next, accessJti, now())) {
      throw invalidGrant('Refresh token was already used');
    }
    return this.#tokenResponse({ ...family, accessJti }, next);
  }

  async #tokenResponse(family: TokenFamily, refreshToken: string): Promise<TokenResponse> {
    const t = now();
    const accessToken = await new SignJWT({
      scope: family.scope,
      client_id: family.clientId,
      cnf: { jkt: family.dpopJkt },
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: this.#d.keys.kid })
      .setIssuer(this.issuer)
      .setAudience(this.#d.config.serviceDid)
      .setSubject(family.did)
      .setJti(family.accessJti)
      .setIssuedAt(t)
      .setExpirationTime(t + ACCESS_TTL_S)
      .sign(this.#d.keys.signingKey);
    return {
      access_token: accessToken,
      token_type: 'DPoP',
      expires_in: ACCESS_TTL_S,
      refresh_token: refreshToken,
      scope: family.scope,
      sub: family.did,
    };
  }

  /** RFC 7009: always 200, whether or not the token was known. */
  async revoke(p: Params): Promise<void> {
    const client = await this.#authenticateClient(p);
    const token = p.token;
    if (!token) throw invalidRequest('token is required');
    const found = this.#d.store.findByRefresh(token);
    if (found && found.family.clientId === client.id) {
      this.#d.store.revokeFamily(found.family.id);
      return;
    }
    const jti = await this.#accessJtiOf(token);
    const family = jti ? this.#d.store.familyByAccessJti(jti) : undefined;
    if (family && family.clientId === client.id) this.#d.store.revokeFamily(family.id);
  }

  async #accessJtiOf(token: string): Promise<string | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.#d.keys.signingKey, {
        issuer: this.issuer,
        typ: 'at+jwt',
        clockTolerance: Number.POSITIVE_INFINITY,
      });
      return typeof payload.jti === 'string' ? payload.jti : undefined;
    } catch {
      return undefined;
    }
  }

  // --- Client authentication ---------------------------------------------------------------

  async #authenticateClient(p: Params): Promise<Client> {
    if (!p.client_id) throw invalidRequest('client_id is required');
    const client = await this.#d.clients.resolve(p.client_id);
    const method = client.metadata.token_endpoint_auth_method;
    if (method === 'none') {
      if (p.client_assertion || p.client_secret) throw invalidClient('This client is registered without credentials');
      return client;
    }
    if (p.client_assertion_type !== CLIENT_ASSERTION_TYPE || !p.client_assertion) {
      throw invalidClient('This client must authenticate with private_key_jwt');
    }
    const keys = await client.keys();
    let payload: Record<string, unknown> | undefined;
    for (const { key } of keys) {
      try {
        ({ payload } = await jwtVerify(p.client_assertion, key, {
          issuer: client.id,
          subject: client.id,
          audience: [this.issuer, `${this.issuer}/oauth/token`, `${this.issuer}/oauth/par`],
          maxTokenAge: '5m',
        }));
        break;
      } catch (err) {
        if (err instanceof joseErrors.JWTExpired) throw invalidClient('client_assertion has expired');
      }
    }
    if (!payload) throw invalidClient("client_assertion could not be verified with the client's keys");
    const jti = payload.jti;
    if (typeof jti !== 'string') throw invalidClient('client_assertion has no jti');
    const t = Date.now();
    for (const [id, until] of this.#seenAssertions) if (until < t) this.#seenAssertions.delete(id);
    if (this.#seenAssertions.has(`${client.id} ${jti}`)) throw invalidClient('client_assertion was already used');
    this.#seenAssertions.set(`${client.id} ${jti}`, t + 10 * 60_000);
    return client;
  }

  // --- Resource server ---------------------------------------------------------------------

  /**
   * Checks `Authorization: DPoP <token>` and its proof for a call to `url`. Throws an
   * OAuthError (401, with WWW-Authenticate) the XRPC layer passes on.
   */
  async verifyAccess(token: string, dpop: DpopContext): Promise<VerifiedAccess> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.#d.keys.signingKey, {
        issuer: this.issuer,
        audience: this.#d.config.serviceDid,
        typ: 'at+jwt',
        algorithms: ['ES256'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired)
        throw resourceError('invalid_token', '"exp" claim timestamp check failed');
      throw resourceError('invalid_token', 'Invalid access token');
    }
    const jkt = (payload.cnf as { jkt?: unknown } | undefined)?.jkt;
    if (typeof payload.jti !== 'string' || typeof jkt !== 'string' || typeof payload.sub !== 'string') {
      throw resourceError('invalid_token', 'Malformed access token');
    }
    let proof;
    try {
      proof = await this.#d.dpop.verify(dpop.header, { ...dpop, accessToken: token });
    } catch (err) {
      if (err instanceof OAuthError) throw resourceError(err.error, err.message);
      throw err;
    }
    if (proof.jkt !== jkt) throw resourceError('invalid_dpop_proof', 'DPoP proof key does not match the token');
    const family = this.#d.store.familyByAccessJti(payload.jti);
    if (!family || family.did !== payload.sub) throw resourceError('invalid_token', 'Token has been revoked');
    const account = this.#d.accountManager.getAccount(family.did);
    if (!account) throw resourceError('invalid_token', 'Account not found');
    return {
      did: family.did,
      clientId: family.clientId,
      permissions: new OAuthPermissions(family.scope),
      takendown: account.takedownRef !== null,
    };
  }

  listClients(did: string) {
    return this.#d.store.listClients(did);
  }

  revokeClient(did: string, clientId: string): boolean {
    return this.#d.store.revokeClient(did, clientId);
  }
}

/** A refusal at the resource server: 401 with the WWW-Authenticate header RFC 9449 wants. */
function resourceError(error: string, description: string): OAuthError {
  const escaped = description.replace(/["\\]/g, '');
  return new OAuthError(error, description, 401, {
    'WWW-Authenticate': `DPoP error="${error}", error_description="${escaped}", algs="ES256 ES256K ES384 ES512 EdDSA RS256 PS256"`,
  });
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
