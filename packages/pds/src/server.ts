/**
 * The HTTP server: CORS, the XRPC routing table (api/index.ts), a few plain routes
 * (routes.ts), and the mapping of every failure to an XRPC error body. Bad input is always a
 * 4xx with `{error, message}`; only a real fault in our code is a 500, and its details go to
 * the log, not the client.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isValidNsid } from '@portage/atproto/syntax/nsid';
import { AtprotoError } from '@portage/atproto/errors';
import * as api from './api/index.ts';
import { authorizeOAuthCall } from './auth/oauth-call.ts';
import type { AppContext } from './context.ts';
import { clientIp } from './rate-limit/rate-limiter.ts';
import { allowedMethods, plainRoutes, type PlainRoute } from './routes.ts';
import { hasRequestBody, readJsonBody, requestBodyStream, requestContentType } from './xrpc/body.ts';
import { InvalidRequest, NotFound, XrpcError } from './xrpc/errors.ts';
import type { RateLimitedCall, XrpcMethod, XrpcOutput } from './xrpc/handler.ts';
import { acceptsEmptyObject, checkOutput, validateInput, validateParams } from './xrpc/lexicon.ts';

const NO_AUTH = Object.freeze({ type: 'none' as const });

/** JSON bodies larger than this are refused with 413 unless a method sets maxInputBytes. */
export const DEFAULT_MAX_JSON_BYTES = 1024 * 1024;

const CORS_EXPOSED_HEADERS = [
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'RateLimit-Policy',
  'Retry-After',
  'atproto-repo-rev',
  'atproto-content-labelers',
  'atproto-proxy',
  'DPoP-Nonce',
  'WWW-Authenticate',
  'X-Request-Id',
].join(', ');

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const allMethods: readonly XrpcMethod[] = Object.values(api);

export function createRequestHandler(
  ctx: AppContext,
  methods: readonly XrpcMethod[] = allMethods,
  routes: readonly PlainRoute[] = plainRoutes,
): RequestHandler {
  const table = new Map<string, XrpcMethod>();
  for (const method of methods) {
    if (table.has(method.nsid)) throw new Error(`XRPC method ${method.nsid} is registered twice`);
    table.set(method.nsid, method);
  }
  const plain = new Map(routes.map((route) => [route.path, { route, allowed: allowedMethods(route) }]));

  return (req, res) => {
    // Only when request logs are wanted: the listener and clock read cost a few microseconds,
    // a visible share of a small read.
    const requestId = requestIdOf(req);
    res.setHeader('X-Request-Id', requestId);
    if (ctx.logger.isLevelEnabled('info')) logWhenFinished(ctx, req, res, requestId);
    setCorsHeaders(req, res);
    // RFC 9449: a resource answers every DPoP-authenticated call with the nonce to use next.
    if (req.headers.authorization?.startsWith('DPoP '))
      res.setHeader('DPoP-Nonce', ctx.oauth.provider.dpop.nextNonce());
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Content-Length': '0' });
      res.end();
      return;
    }
    const started = performance.now();
    dispatch(ctx, table, plain, req, res)
      .catch((err: unknown) => sendError(ctx, req, res, err))
      .then(() =>
        ctx.metrics.observeRequest(
          methodLabel(table, plain, req),
          res.statusCode,
          (performance.now() - started) / 1000,
        ),
      );
  };
}

/**
 * What a request is counted under in the metrics: the XRPC method (served here or forwarded),
 * the plain route, or `other` for paths that are neither.
 */
function methodLabel(table: Map<string, XrpcMethod>, plain: Map<string, unknown>, req: IncomingMessage): string {
  const url = req.url ?? '/';
  const queryStart = url.indexOf('?');
  const path = queryStart < 0 ? url : url.slice(0, queryStart);
  if (path.startsWith('/xrpc/')) {
    const nsid = path.slice('/xrpc/'.length);
    if (table.has(nsid) || isValidNsid(nsid)) return nsid;
  }
  return plain.has(path) ? path : 'other';
}

/**
 * The id that ties a request's log lines to what the client saw: the one a proxy in front gave
 * (X-Request-Id, when it looks like an id), or a new one. Echoed in the response.
 */
function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
}

function logWhenFinished(ctx: AppContext, req: IncomingMessage, res: ServerResponse, requestId: string): void {
  const started = process.hrtime.bigint();
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    // Path only: query strings and headers are never logged.
    ctx.logger.info(
      {
        requestId,
        method: req.method,
        path: (req.url ?? '/').split('?')[0],
        status: res.statusCode,
        ms: Math.round(ms * 10) / 10,
      },
      'request',
    );
  });
}

function setCorsHeaders(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Expose-Headers', CORS_EXPOSED_HEADERS);
  if (req.method === 'OPTIONS') {
    res.setHeader('Access-Control-Allow-Methods', 'GET,HEAD,POST,PUT,DELETE,OPTIONS');
    const requested = req.headers['access-control-request-headers'];
    res.setHeader(
      'Access-Control-Allow-Headers',
      requested ?? 'Content-Type, Authorization, DPoP, atproto-proxy, atproto-accept-labelers',
    );
    res.setHeader('Access-Control-Max-Age', '86400');
    res.setHeader('Vary', 'Access-Control-Request-Headers');
  }
}

async function dispatch(
  ctx: AppContext,
  table: Map<string, XrpcMethod>,
  plain: Map<string, { route: PlainRoute; allowed: string[] }>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const rawUrl = req.url ?? '/';
  const queryStart = rawUrl.indexOf('?');
  const path = queryStart < 0 ? rawUrl : rawUrl.slice(0, queryStart);
  const search = new URLSearchParams(queryStart < 0 ? '' : rawUrl.slice(queryStart + 1));

  const plainRoute = plain.get(path);
  if (plainRoute) {
    const { route, allowed } = plainRoute;
    if (!allowed.includes(req.method ?? '')) {
      throw new XrpcError(405, 'MethodNotAllowed', `Method Not Allowed: ${req.method}`, { Allow: allowed.join(', ') });
    }
    await route.handler({ ctx, req, res, search });
    return;
  }
  if (!path.startsWith('/xrpc/')) throw NotFound(`Not Found: ${path}`);

  const nsid = path.slice('/xrpc/'.length);
  const method = table.get(nsid);
  // Everything not served here goes to the service that serves it (proxy/).
  if (!method) return ctx.proxy.forward(nsid, req, res, queryStart < 0 ? '' : rawUrl.slice(queryStart + 1));
  const expected = method.type === 'query' ? 'GET' : 'POST';
  if (req.method !== expected && !(method.type === 'query' && req.method === 'HEAD')) {
    throw InvalidRequest(`Incorrect HTTP method (${req.method}) expected ${expected}`);
  }

  // The reference's order: params, auth, input, rate limits.
  const { lexicon } = method;
  const params = lexicon.params ? validateParams(nsid, lexicon.params, search) : {};
  const auth =
    method.auth === 'none'
      ? NO_AUTH
      : await ctx.authVerifier.verify(method.auth, req, { nsid, allowTakendown: method.allowTakendown });
  const inputEncoding = requestContentType(req);
  const input = await readInput(ctx, method, req, inputEncoding);
  if (auth.type === 'access' && auth.oauth) {
    const appViewDid = ctx.config.bskyAppViewDid;
    authorizeOAuthCall(auth.oauth.permissions, {
      nsid,
      params: params as Record<string, unknown>,
      input,
      inputEncoding,
      appViewAud: appViewDid ? `${appViewDid}#bsky_appview` : undefined,
    });
  }

  const limiter = ctx.rateLimiter; // undefined when rate limits are off
  if (limiter) {
    const call: RateLimitedCall = { params, input, auth, ip: clientIp(req) };
    const charges = (method.rateLimit ?? []).map((rule) => ({
      policy: rule.policy,
      key: rule.key(call),
      points: rule.points ? rule.points(call) : 1,
    }));
    await limiter.check(call.ip, res, charges);
  }
  const output = await method.handler({ ctx, nsid, params, input, inputEncoding, auth, req, res });
  // Outputs are checked against the lexicon in development mode (the tests, the benchmarks),
  // as the reference checks its own (validateResponse: devMode): there a mismatch is a bug to
  // see at once. In production the walk of every answer on hot paths like getRecord would cost
  // more than it could catch, since the handler built the answer from data we checked going in.
  if (ctx.config.devMode && output && 'json' in output && lexicon.output?.type === 'lex') {
    checkOutput(nsid, lexicon.output.schema, output.json);
  }
  await sendOutput(req, res, output);
}

/**
 * The request body as the method's lexicon declares it: a JSON body checked against the
 * schema, a binary body as a size-limited stream, or nothing. A procedure whose input has no
 * required property may be called without a body, as if it were `{}`.
 */
async function readInput(
  ctx: AppContext,
  method: XrpcMethod,
  req: IncomingMessage,
  inputEncoding: string | undefined,
): Promise<unknown> {
  const { lexicon } = method;
  if (lexicon.type !== 'xrpc_procedure' || !lexicon.input) return undefined;
  const limit = inputLimit(ctx, method);
  if (lexicon.input.type === 'blob') return hasRequestBody(req) ? requestBodyStream(req, limit) : emptyStream();
  const { schema } = lexicon.input;
  if (!hasRequestBody(req)) {
    if (acceptsEmptyObject(schema)) return validateInput(schema, {});
    throw InvalidRequest('A request body is expected but none was provided');
  }
  if (!inputEncoding) throw InvalidRequest('Request encoding (Content-Type) required but not provided');
  if (inputEncoding !== 'application/json') {
    throw InvalidRequest(`Wrong request encoding (Content-Type): ${inputEncoding}`);
  }
  return validateInput(schema, await readJsonBody(req, limit));
}

function inputLimit(ctx: AppContext, method: XrpcMethod): number {
  const { maxInputBytes } = method;
  if (typeof maxInputBytes === 'function') return maxInputBytes(ctx);
  if (typeof maxInputBytes === 'number') return maxInputBytes;
  return method.lexicon.type === 'xrpc_procedure' && method.lexicon.input?.type === 'blob'
    ? ctx.config.blobUploadLimit
    : DEFAULT_MAX_JSON_BYTES;
}

async function* emptyStream(): AsyncGenerator<Uint8Array> {}

export async function sendOutput(req: IncomingMessage, res: ServerResponse, output: XrpcOutput): Promise<void> {
  if (!output) {
    res.writeHead(200, { 'Content-Length': '0' });
    res.end();
    return;
  }
  for (const [k, v] of Object.entries(output.headers ?? {})) res.setHeader(k, v);
  if ('redirect' in output) {
    res.writeHead(302, { Location: output.redirect, 'Content-Length': '0' });
    res.end();
    return;
  }
  if ('json' in output) {
    // Ended with a string, the body goes out in the same socket write as the headers.
    const body = JSON.stringify(output.json);
    res.writeHead(200, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body, 'utf8'),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  res.setHeader('Content-Type', output.contentType);
  if (output.body instanceof Uint8Array) {
    res.writeHead(200, { 'Content-Length': output.body.byteLength });
    res.end(req.method === 'HEAD' ? undefined : output.body);
    return;
  }
  res.writeHead(200);
  if (req.method === 'HEAD') {
    res.end();
    // The body is not sent: release what it holds open (a file, a connection to the bucket).
    (output.body as { destroy?: () => void }).destroy?.();
    return;
  }
  // pipeline applies backpressure and destroys the socket if the stream fails midway, so a
  // client never mistakes a truncated body for a complete one.
  await pipeline(Readable.from(output.body, { objectMode: false }), res);
}

function sendError(ctx: AppContext, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const xrpc = toXrpcError(err);
  if (xrpc.status >= 500) {
    ctx.logger.error({ err, path: (req.url ?? '/').split('?')[0] }, 'request failed');
  }
  if (res.headersSent) {
    // Too late for an error body: cut the connection so the client sees the failure.
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify(xrpc.toJSON()), 'utf8');
  for (const [k, v] of Object.entries(xrpc.headers)) res.setHeader(k, v);
  // Refused before the request body was all read (413, a bad token on an upload...): a client
  // that stops sending mid-body and reuses the connection would have its next request read as
  // the rest of this body. Closing the connection after the answer keeps both sides in step.
  if (!req.complete) res.setHeader('Connection', 'close');
  res.writeHead(xrpc.status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.byteLength });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function toXrpcError(err: unknown): XrpcError {
  if (err instanceof XrpcError) return err;
  // Protocol-library errors are raised on bad input (an invalid handle, CID, record...).
  if (err instanceof AtprotoError) return InvalidRequest(err.message);
  return new XrpcError(500, 'InternalServerError', 'Internal Server Error');
}

export interface RunningServer {
  server: Server;
  /** The URL the server is reachable at on this machine (http://127.0.0.1:<port>). */
  localUrl: string;
  port: number;
  close(): Promise<void>;
}

/** Listens on host:port (port 0 picks a free one) and resolves once accepting connections. */
export async function listen(handler: RequestHandler, port: number, host?: string): Promise<RunningServer> {
  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostForUrl = !host || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    server,
    port: address.port,
    localUrl: `http://${hostForUrl.includes(':') ? `[${hostForUrl}]` : hostForUrl}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
