/**
 * What can go wrong signing in through OAuth, as codes a page can word: the server cannot be
 * reached or offers no usable OAuth, the user refused, the answer does not fit what was asked
 * (another account, another issuer, a state that is not ours), or a token request was refused.
 */
export type OAuthFailure =
  /** The server (or its authorization server) did not answer. */
  | 'unreachable'
  /** It answers, but offers no OAuth this client can use (no PAR, no DPoP ES256, no S256...). */
  | 'unsupported'
  /** The user refused the consent (or closed the authorization page). */
  | 'access-denied'
  /** The user signed in as another account than the one being moved. */
  | 'wrong-account'
  /** The answer came from another issuer, for another request, or misses what the spec requires. */
  | 'invalid-response'
  /** The authorization server refused a request (PAR, the code, a refresh). */
  | 'refused';

export class OAuthError extends Error {
  readonly failure: OAuthFailure;
  /** The server's OAuth error code, when it gave one. */
  readonly code: string | undefined;

  constructor(failure: OAuthFailure, message: string, code?: string) {
    super(message);
    this.name = 'OAuthError';
    this.failure = failure;
    this.code = code;
  }
}
