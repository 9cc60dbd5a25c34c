/**
 * A public atproto OAuth client (no client secret), small enough for a page: PAR with PKCE (S256)
 * and DPoP, the authorization page, the code exchanged for DPoP-bound tokens. Everything secret
 * (the PKCE verifier, the DPoP key, the tokens) stays in the objects this module returns; a page
 * that must survive a navigation keeps only what it chooses to.
 *
 * The answer is checked the way the spec asks: the `iss` of the authorization response is the
 * issuer we discovered, the `state` is ours, and the token's `sub` is the account we meant (the
 * DID whose PDS named this issuer), so another account chosen on the authorization page is refused.
 */
import { DpopKey, randomToken, sha256Base64Url } from './dpop.ts';
import { OAuthError } from './errors.ts';
import type { AuthorizationServer } from './metadata.ts';
import { checkTokens, OAuthSession, tokenRequest } from './session.ts';

export interface ClientIdentity {
  /** The client_id: the URL of the client metadata document, or a loopback client id. */
  clientId: string;
  redirectUri: string;
  scope: string;
}

/** An authorization under way, between the PAR and the page's answer. Keep it in memory. */
export interface PendingAuthorization {
  server: AuthorizationServer;
  client: ClientIdentity;
  did: string;
  state: string;
  verifier: string;
  dpop: DpopKey;
  /** The authorization server's nonces, by origin, carried over to the session. */
  nonces: Map<string, string>;
  /** Where to send the user. */
  url: string;
}

export interface BeginOptions {
  server: AuthorizationServer;
  client: ClientIdentity;
  /** The account being signed in (the page is told, and the token must be for it). */
  did: string;
  /** Prefills the authorization page's sign-in (a handle or the DID). */
  loginHint?: string;
  fetch?: typeof fetch;
}

/** Pushes the authorization request (PAR) and returns where to send the user. */
export async function beginAuthorization(opts: BeginOptions): Promise<PendingAuthorization> {
  const fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const dpop = await DpopKey.generate();
  const state = randomToken(24);
  const verifier = randomToken(48);
  const nonces = new Map<string, string>();
  const body = new URLSearchParams({
    client_id: opts.client.clientId,
    response_type: 'code',
    redirect_uri: opts.client.redirectUri,
    scope: opts.client.scope,
    state,
    code_challenge: await sha256Base64Url(verifier),
    code_challenge_method: 'S256',
    response_mode: 'query',
  });
  if (opts.loginHint) body.set('login_hint', opts.loginHint);
  const answer = await tokenRequest(opts.server.parEndpoint, body, dpop, nonces, fetchImpl);
  if (typeof answer.request_uri !== 'string') {
    throw new OAuthError('invalid-response', 'the authorization server gave no request_uri');
  }
  const url = new URL(opts.server.authorizationEndpoint);
  url.searchParams.set('client_id', opts.client.clientId);
  url.searchParams.set('request_uri', answer.request_uri);
  return { server: opts.server, client: opts.client, did: opts.did, state, verifier, dpop, nonces, url: url.href };
}

/**
 * Takes the authorization page's answer (the redirect URI's query) and exchanges the code.
 * Throws OAuthError: `access-denied` when the user refused, `wrong-account` for another account.
 */
export async function completeAuthorization(
  pending: PendingAuthorization,
  answer: URLSearchParams,
  fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis),
): Promise<OAuthSession> {
  if (answer.get('state') !== pending.state) {
    throw new OAuthError('invalid-response', 'the answer is not for this sign-in (its state differs)');
  }
  if (answer.get('iss') !== pending.server.issuer) {
    throw new OAuthError(
      'invalid-response',
      `the answer names the issuer ${answer.get('iss') ?? '(none)'}, not ${pending.server.issuer}`,
    );
  }
  const error = answer.get('error');
  if (error) {
    throw new OAuthError(
      error === 'access_denied' ? 'access-denied' : 'refused',
      answer.get('error_description') ?? error,
      error,
    );
  }
  const code = answer.get('code');
  if (!code) throw new OAuthError('invalid-response', 'the answer carries no code');
  const tokens = await tokenRequest(
    pending.server.tokenEndpoint,
    new URLSearchParams({
      grant_type: 'authorization_code',
      client_id: pending.client.clientId,
      redirect_uri: pending.client.redirectUri,
      code,
      code_verifier: pending.verifier,
    }),
    pending.dpop,
    pending.nonces,
    fetchImpl,
  );
  let set;
  try {
    set = checkTokens(tokens, pending.did);
  } catch (err) {
    // Tokens for another account are of no use here: end them rather than leave them valid.
    const token = tokens.refresh_token ?? tokens.access_token;
    const endpoint = pending.server.revocationEndpoint;
    if (endpoint && typeof token === 'string') {
      const form = new URLSearchParams({ token, client_id: pending.client.clientId });
      await tokenRequest(endpoint, form, pending.dpop, pending.nonces, fetchImpl).catch(() => {});
    }
    throw err;
  }
  return new OAuthSession({
    server: pending.server,
    client: pending.client,
    dpop: pending.dpop,
    nonces: pending.nonces,
    tokens: set,
    fetch: fetchImpl,
  });
}
