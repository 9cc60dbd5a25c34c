/**
 * OAuth errors as RFC 6749 / 9449 shape them: `{error, error_description}` with a status, plus
 * the headers a client acts on (a fresh DPoP-Nonce, WWW-Authenticate on a resource).
 */
export class OAuthError extends Error {
  readonly error: string;
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(error: string, description: string, status = 400, headers: Record<string, string> = {}) {
    super(description);
    this.error = error;
    this.status = status;
    this.headers = headers;
  }

  toJSON(): { error: string; error_description: string } {
    return { error: this.error, error_description: this.message };
  }
}

export const invalidRequest = (d: string) => new OAuthError('invalid_request', d);
export const invalidGrant = (d: string) => new OAuthError('invalid_grant', d);
export const invalidClient = (d: string) => new OAuthError('invalid_client', d, 401);
export const invalidClientMetadata = (d: string) => new OAuthError('invalid_client_metadata', d);
export const invalidDpopProof = (d: string) => new OAuthError('invalid_dpop_proof', d);
export const useDpopNonce = (d: string) => new OAuthError('use_dpop_nonce', d);
export const invalidScope = (d: string) => new OAuthError('invalid_scope', d);
export const invalidRedirectUri = (d: string) => new OAuthError('invalid_redirect_uri', d);
