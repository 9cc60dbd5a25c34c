/**
 * A signed-in connection to one PDS for one account. Tokens stay in memory only (never in the
 * journal). Every session answer is checked to be about the DID being migrated, so two
 * migrations (or a typo in a URL) can never mix accounts. An expired access token is refreshed
 * once, transparently.
 *
 * The session is either the engine's own (a password through createSession, Bearer tokens) or a
 * delegated one: an OAuth session the caller holds, whose `fetch` authorizes each request itself
 * (DPoP) and refreshes its own tokens. Both look the same to the steps.
 */
import { OAuthError } from '@portage/atproto/oauth/errors';
import { XrpcClient, XrpcClientError, type XrpcParams } from '@portage/atproto/xrpc/client';
import { MigrationError } from './errors.ts';
import { RateGate, type RetryOptions, withRetry } from './retry.ts';

/** What a server says about the signed-in account (createSession, getSession). */
export interface AccountInfo {
  did: string;
  handle: string;
  email?: string;
  active?: boolean;
  status?: string;
}

export interface SessionInfo extends AccountInfo {
  accessJwt: string;
  refreshJwt: string;
}

/**
 * A session someone else keeps, for one account on one server: its `fetch` sends each request
 * authorized (an OAuth client's DPoP-bound tokens), answering nonce demands and refreshing itself.
 */
export interface DelegatedSession {
  /** The account the tokens are for (the OAuth token's `sub`). */
  readonly did: string;
  readonly fetch: typeof fetch;
}

export class PdsSession {
  readonly service: string;
  readonly did: string;
  readonly gate: RateGate;
  readonly anonymous: XrpcClient;
  readonly client: XrpcClient;
  readonly #fetch: typeof fetch;
  #access: string | undefined;
  #refresh: string | undefined;
  #delegated: DelegatedSession | undefined;
  info: AccountInfo | undefined;

  /** `longestWaitMs`: the longest rate-limit pause waited out (see RateGate). */
  constructor(service: string, did: string, fetchImpl?: typeof fetch, longestWaitMs?: number) {
    this.service = service;
    this.did = did;
    this.gate = new RateGate(service, longestWaitMs);
    this.#fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    this.anonymous = new XrpcClient({ service, fetch: this.#fetch });
    this.client = new XrpcClient({
      service,
      fetch: (input, init) => (this.#delegated?.fetch ?? this.#fetch)(input, init),
      headers: (): Record<string, string> => (this.#access ? { authorization: `Bearer ${this.#access}` } : {}),
    });
  }

  get signedIn(): boolean {
    return this.#access !== undefined || this.#delegated !== undefined;
  }

  /** Whether the session is delegated (OAuth) rather than the engine's own password session. */
  get delegated(): boolean {
    return this.#delegated !== undefined;
  }

  /** The access token of a password session (to read its scope), undefined for a delegated one. */
  get accessJwt(): string | undefined {
    return this.#access;
  }

  /**
   * Takes a delegated session for our DID and reads the account through it (getSession). Throws
   * XrpcClientError as the server answered (a revoked or expired session is a 401).
   */
  async delegate(session: DelegatedSession): Promise<AccountInfo> {
    this.#checkDid(session.did);
    this.#delegated = session;
    this.#access = undefined;
    this.#refresh = undefined;
    const info = await this.query<AccountInfo>('com.atproto.server.getSession', undefined, { attempts: 4 });
    this.#checkDid(info.did);
    this.info = info;
    return info;
  }

  #checkDid(did: string): void {
    if (did !== this.did) {
      throw new MigrationError(
        'DidMismatch',
        `${this.service} answered for ${did}, not for ${this.did}`,
        'Check the account and server you gave; nothing was changed.',
      );
    }
  }

  /** createSession; throws XrpcClientError as the server answered (callers turn it into advice). */
  async login(password: string, authFactorToken?: string): Promise<SessionInfo> {
    const info = await withRetry(
      () =>
        this.anonymous.procedure<SessionInfo>(
          'com.atproto.server.createSession',
          { identifier: this.did, password, ...(authFactorToken ? { authFactorToken } : {}) },
          { timeoutMs: 60_000 },
        ),
      { attempts: 4, gate: this.gate },
    );
    this.adopt(info);
    return info;
  }

  /** Takes tokens from createSession/createAccount after checking they belong to our DID. */
  adopt(info: SessionInfo): void {
    this.#checkDid(info.did);
    this.#delegated = undefined;
    this.#access = info.accessJwt;
    this.#refresh = info.refreshJwt;
    this.info = info;
  }

  async #refreshSession(): Promise<void> {
    const refreshJwt = this.#refresh;
    const client = new XrpcClient({
      service: this.service,
      fetch: this.#fetch,
      headers: () => ({ authorization: `Bearer ${refreshJwt}` }),
    });
    const info = await client.procedure<SessionInfo>('com.atproto.server.refreshSession', undefined, {
      timeoutMs: 60_000,
    });
    this.adopt({ ...this.info, ...info });
  }

  /**
   * Runs an authenticated call, refreshing the session once on ExpiredToken. A delegated session
   * refreshes itself; when the server no longer honours it, no retry can help and the run stops
   * asking the user to sign in again.
   */
  async #authed<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (this.#delegated && signedOut(err)) {
        throw new MigrationError(
          'SignedOut',
          `${this.service} no longer accepts the sign-in (${describeSignOut(err as XrpcClientError)})`,
          { kind: 'need-input', field: 'oldPassword', reason: 'signed-out' },
          { cause: err },
        );
      }
      if (err instanceof XrpcClientError && err.error === 'ExpiredToken' && this.#refresh) {
        await this.#refreshSession();
        return await fn();
      }
      throw err;
    }
  }

  query<T>(nsid: string, params?: XrpcParams, retry: RetryOptions = {}): Promise<T> {
    return withRetry(() => this.#authed(() => this.client.query<T>(nsid, params, { timeoutMs: 120_000 })), {
      gate: this.gate,
      ...retry,
    });
  }

  procedure<T>(nsid: string, input?: unknown, retry: RetryOptions = {}): Promise<T> {
    return withRetry(() => this.#authed(() => this.client.procedure<T>(nsid, input, { timeoutMs: 120_000 })), {
      gate: this.gate,
      ...retry,
    });
  }

  /** A raw authenticated request (streams), without retry: the caller retries the whole transfer. */
  request(nsid: string, req: Parameters<XrpcClient['request']>[1]): Promise<Response> {
    return this.#authed(() => this.client.request(nsid, req));
  }
}

/**
 * Whether a delegated session's call failed because the session is over: the server refused its
 * token (401), or the session's own refresh was refused (its fetch rejects with that OAuthError).
 */
export function signedOut(err: unknown): boolean {
  if (!(err instanceof XrpcClientError)) return false;
  // A taken-down account answers 401 too, but signing in again cannot help there.
  if (err.status === 401) return err.error !== 'AccountTakedown';
  return err.cause instanceof OAuthError && err.cause.failure === 'refused';
}

function describeSignOut(err: XrpcClientError): string {
  return err.cause instanceof OAuthError ? err.cause.message : err.error;
}
