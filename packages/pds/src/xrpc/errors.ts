/**
 * XRPC errors as the wire sees them: an HTTP status plus `{error, message}`. Endpoints throw
 * these; the server turns anything else into a 500 without leaking details. Status names and
 * default messages follow the reference implementation so clients branch on them unchanged.
 */
export class XrpcError extends Error {
  readonly status: number;
  readonly error: string;
  /** Extra response headers (e.g. WWW-Authenticate, Retry-After). */
  readonly headers: Record<string, string>;
  constructor(status: number, error: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'XrpcError';
    this.status = status;
    this.error = error;
    this.headers = headers;
  }

  toJSON(): { error: string; message: string } {
    return { error: this.error, message: this.message };
  }
}

export function InvalidRequest(message = 'Invalid Request', error = 'InvalidRequest'): XrpcError {
  return new XrpcError(400, error, message);
}

export function AuthRequired(message = 'Authentication Required', error = 'AuthenticationRequired'): XrpcError {
  return new XrpcError(401, error, message);
}

export function Forbidden(message = 'Forbidden', error = 'Forbidden'): XrpcError {
  return new XrpcError(403, error, message);
}

export function NotFound(message = 'Not Found', error = 'NotFound'): XrpcError {
  return new XrpcError(404, error, message);
}

export function PayloadTooLarge(message = 'Payload Too Large'): XrpcError {
  return new XrpcError(413, 'PayloadTooLarge', message);
}

export function UnsupportedMediaType(message = 'Unsupported Media Type'): XrpcError {
  return new XrpcError(415, 'UnsupportedMediaType', message);
}

export function RateLimitExceeded(message = 'Rate Limit Exceeded'): XrpcError {
  return new XrpcError(429, 'RateLimitExceeded', message);
}

export function InternalServerError(message = 'Internal Server Error'): XrpcError {
  return new XrpcError(500, 'InternalServerError', message);
}

export function MethodNotImplemented(message = 'Method Not Implemented'): XrpcError {
  return new XrpcError(501, 'MethodNotImplemented', message);
}

export function UpstreamFailure(message = 'Upstream Failure'): XrpcError {
  return new XrpcError(502, 'UpstreamFailure', message);
}
