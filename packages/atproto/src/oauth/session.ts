/**
 * A signed-in OAuth session: a `fetch` that sends each request to the PDS with
 * `Authorization: DPoP <token>` and a fresh proof, answers a server's demand for a nonce
 * (`use_dpop_nonce`) by sending again with it, and refreshes the tokens when the access token
 * has expired (before sending, or when the PDS says so). Tokens live in this object only.
 */
import type { DpopKey } from './dpop.ts';
import { OAuthError } from './errors.ts';
import type { AuthorizationServer } from './metadata.ts';
import type { ClientIdentity } from './client.ts';

export interface TokenSet {
  sub: string;
  scope: string;
  accessToken: string;
  refreshToken: string | undefined;
  /** Milliseconds since the epoch, when the server said. */
  expiresAt: number | undefined;
}

export interface OAuthSessionInit {
  server: AuthorizationServer;
  client: ClientIdentity;
  dpop: DpopKey;
  nonces: Map<string, string>;
  tokens: TokenSet;
  fetch?: typeof fetch;
}

/** A refresh this close to expiry happens before the request rather than after a refusal. */
const EXPIRY_MARGIN_MS = 30_000;

export class OAuthSession {
  readonly server: AuthorizationServer;
  readonly did: string;
  readonly #client: ClientIdentity;
  readonly #dpop: DpopKey;
  readonly #nonces: Map<string, string>;
  readonly #fetch: typeof fetch;
  #tokens: TokenSet;
  #refreshing: Promise<void> | undefined;

  constructor(init: OAuthSessionInit) {
    this.server = init.server;
    this.did = init.tokens.sub;
    this.#client = init.client;
    this.#dpop = init.dpop;
    this.#nonces = init.nonces;
    this.#tokens = init.tokens;
    this.#fetch = init.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The scopes the server granted (it may grant fewer than asked). */
  get scope(): string {
    return this.#tokens.scope;
  }

  /** A fetch for the PDS, DPoP-authorized. Bodies that cannot be sent twice (streams) are never resent. */
  readonly fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const resendable = !(init.body instanceof ReadableStream) && !(input instanceof Request);
    const expiresAt = this.#tokens.expiresAt;
    if (expiresAt !== undefined && expiresAt - EXPIRY_MARGIN_MS < Date.now() && this.#tokens.refreshToken) {
      await this.refresh();
    }
    let res = await this.#send(url, method, input, init);
    if (!resendable) return res;
    if (res.status === 401 && authenticateError(res) === 'use_dpop_nonce') {
      await res.body?.cancel();
      res = await this.#send(url, method, input, init);
    }
    if (res.status === 401 && authenticateError(res) === 'invalid_token' && this.#tokens.refreshToken) {
      await res.body?.cancel();
      await this.refresh();
      res = await this.#send(url, method, input, init);
    }
    return res;
  };

  async #send(url: string, method: string, input: RequestInfo | URL, init: RequestInit): Promise<Response> {
    const origin = new URL(url).origin;
    const token = this.#tokens.accessToken;
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set('authorization', `DPoP ${token}`);
    headers.set(
      'dpop',
      await this.#dpop.proof({ htm: method, htu: url, nonce: this.#nonces.get(origin), accessToken: token }),
    );
    const res = await this.#fetch(input, { ...init, headers });
    const nonce = res.headers.get('dpop-nonce');
    if (nonce) this.#nonces.set(origin, nonce);
    return res;
  }

  /** New tokens from the refresh token; one refresh at a time, however many requests wait for it. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refreshOnce().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refreshOnce(): Promise<void> {
    const refreshToken = this.#tokens.refreshToken;
    if (!refreshToken) throw new OAuthError('refused', 'the session has expired and cannot be refreshed');
    const answer = await tokenRequest(
      this.server.tokenEndpoint,
      new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        client_id: this.#client.clientId,
      }),
      this.#dpop,
      this.#nonces,
      this.#fetch,
    );
    const next = checkTokens(answer, this.did);
    this.#tokens = { ...next, refreshToken: next.refreshToken ?? refreshToken };
  }

  /** Ends the session at the authorization server (best effort) and forgets the tokens. */
  async revoke(): Promise<void> {
    const endpoint = this.server.revocationEndpoint;
    const token = this.#tokens.refreshToken ?? this.#tokens.accessToken;
    this.#tokens = { ...this.#tokens, accessToken: '', refreshToken: undefined };
    if (!endpoint) return;
    await tokenRequest(
      endpoint,
      new URLSearchParams({ token, client_id: this.#client.clientId }),
      this.#dpop,
      this.#nonces,
      this.#fetch,
    ).catch(() => {});
  }
}

/**
 * A form POST to the authorization server with a DPoP proof, sent once more with the server's
 * nonce when it answers `use_dpop_nonce`. Resolves to the JSON answer; a refusal is an OAuthError.
 */
export async function tokenRequest(
  endpoint: string,
  body: URLSearchParams,
  dpop: DpopKey,
  nonces: Map<string, string>,
  fetchImpl: typeof fetch,
): Promise<Record<string, unknown>> {
  const origin = new URL(endpoint).origin;
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    try {
      res = await fetchImpl(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          dpop: await dpop.proof({ htm: 'POST', htu: endpoint, nonce: nonces.get(origin) }),
        },
        body: body.toString(),
      });
    } catch {
      throw new OAuthError('unreachable', `${origin} did not answer`);
    }
    const nonce = res.headers.get('dpop-nonce');
    if (nonce) nonces.set(origin, nonce);
    let json: Record<string, unknown> = {};
    const text = await res.text();
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed === 'object' && parsed !== null) json = parsed as Record<string, unknown>;
    } catch {
      if (res.ok) throw new OAuthError('invalid-response', `${endpoint} did not answer JSON`);
    }
    if (res.ok) return json;
    const code = typeof json.error === 'string' ? json.error : undefined;
    if (code === 'use_dpop_nonce' && nonce && attempt === 0) continue;
    const description = typeof json.error_description === 'string' ? json.error_description : `status ${res.status}`;
    if (res.status >= 500) throw new OAuthError('unreachable', `${endpoint} failed (${description})`, code);
    throw new OAuthError('refused', `${endpoint} refused: ${description}`, code);
  }
}

/** The `error` of a `WWW-Authenticate: DPoP error="..."` (or Bearer) challenge. */
function authenticateError(res: Response): string | undefined {
  return /error="([^"]+)"/.exec(res.headers.get('www-authenticate') ?? '')?.[1];
}

/** A token answer, checked: DPoP-bound, with the atproto scope, for the expected DID. */
export function checkTokens(answer: Record<string, unknown>, did: string): TokenSet {
  if (typeof answer.access_token !== 'string' || !answer.access_token) {
    throw new OAuthError('invalid-response', 'the token answer carries no access token');
  }
  if (typeof answer.token_type !== 'string' || answer.token_type.toLowerCase() !== 'dpop') {
    throw new OAuthError('invalid-response', `the token is of type ${String(answer.token_type)}, not DPoP`);
  }
  if (answer.sub !== did) {
    throw new OAuthError(
      'wrong-account',
      `the sign-in was for ${typeof answer.sub === 'string' ? answer.sub : 'no account'}, not for ${did}`,
    );
  }
  const scope = typeof answer.scope === 'string' ? answer.scope : '';
  if (!scope.split(' ').includes('atproto')) {
    throw new OAuthError('invalid-response', 'the token was granted without the atproto scope');
  }
  return {
    sub: did,
    scope,
    accessToken: answer.access_token,
    refreshToken: typeof answer.refresh_token === 'string' ? answer.refresh_token : undefined,
    expiresAt: typeof answer.expires_in === 'number' ? Date.now() + answer.expires_in * 1000 : undefined,
  };
}
