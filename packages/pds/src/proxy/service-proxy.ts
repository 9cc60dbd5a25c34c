/**
 * Forwarding (the reference's "pipethrough"): every XRPC method this server does not answer
 * itself is sent on to the service that does, the AppView for app.bsky.*, a report service,
 * or whatever `atproto-proxy` names, with the request and the response streamed through.
 * A signed-in caller's call carries a fresh service JWT signed with the account's repo key
 * (iss = account, aud = service DID, lxm = method), so the service knows who asks. As the
 * reference, forwarding is for signed-in callers only: an anonymous client talks to the
 * AppView directly, and an open relay would let anyone spend this server's bandwidth. Upstream XRPC errors reach the client as the service sent
 * them (a 500 becomes 502 UpstreamFailure, as the reference does).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { type DidDocument, normalizeServiceUrl } from '@portage/atproto/identity/did-document';
import type { DidResolver } from '@portage/atproto/identity/did-resolver';
import { parseAtUri } from '@portage/atproto/syntax/at-uri';
import { isValidDid } from '@portage/atproto/syntax/did';
import { isValidNsid } from '@portage/atproto/syntax/nsid';
import type { AccountManager } from '../account/account-manager.ts';
import type { ActorStore } from '../actor-store/actor-store.ts';
import { AuthScope } from '../auth/scopes.ts';
import { isPrivilegedMethod, isProtectedMethod } from '../auth/protected-methods.ts';
import { authorizeOAuthForward } from '../auth/oauth-call.ts';
import { mintServiceJwt } from '../auth/service-auth.ts';
import type { AccessAuth, AuthVerifier } from '../auth/verifier.ts';
import type { PdsConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import { readJsonBody } from '../xrpc/body.ts';
import { InvalidRequest, XrpcError } from '../xrpc/errors.ts';
import { defaultTarget, parseProxyHeader, resolutionFailure, type ServiceTarget } from './targets.ts';
import {
  type LocalRecords,
  type LocalViewDeps,
  localThread,
  mergeLocal,
  READ_AFTER_WRITE_METHODS,
  recordsSinceRev,
  upstreamLag,
} from './read-after-write.ts';
import { headerValue, readSmallBody, Upstream } from './upstream.ts';

/** Headers of the client's request the service may need (the reference's list). */
const REQUEST_HEADERS = ['accept-language', 'atproto-accept-labelers', 'x-bsky-topics'];
/** Headers of the service's answer passed back (besides the content ones, on success). */
const RESPONSE_HEADERS = ['atproto-repo-rev', 'atproto-content-labelers', 'retry-after'];
const CONTENT_HEADERS = ['content-length', 'content-encoding', 'content-type', 'content-language'];
/** An upstream error body larger than this is not parsed; the status alone is passed on. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** Bound on small JSON read whole here (a registerPush body, a feed generator record). */
const MAX_SMALL_JSON_BYTES = 64 * 1024;
const TARGET_CACHE_TTL_MS = 5 * 60_000;
const TARGET_CACHE_MAX = 10_000;

/** An AppView answer merged with local records is read whole; past this it is refused. */
const MAX_MERGED_BODY_BYTES = 10 * 1024 * 1024;

const GET_FEED = 'app.bsky.feed.getFeed';
const GET_POST_THREAD = 'app.bsky.feed.getPostThread';
const REGISTER_PUSH = 'app.bsky.notification.registerPush';

export interface ServiceProxyDeps {
  config: PdsConfig;
  didResolver: DidResolver;
  authVerifier: AuthVerifier;
  actorStore: ActorStore;
  accountManager: AccountManager;
  logger: Logger;
  /** Where the time to each upstream answer is counted. */
  metrics?: { observeForwarded(method: string, status: number, seconds: number): void };
}

const STATUS_NAMES: Record<number, string> = {
  400: 'InvalidRequest',
  401: 'AuthenticationRequired',
  403: 'Forbidden',
  404: 'XRPCNotSupported',
  413: 'PayloadTooLarge',
  429: 'RateLimitExceeded',
  501: 'MethodNotImplemented',
  502: 'UpstreamFailure',
  503: 'NotEnoughResources',
  504: 'UpstreamTimeout',
};

export class ServiceProxy {
  readonly #deps: ServiceProxyDeps;
  readonly upstream: Upstream;
  readonly #targets = new Map<string, { target: Promise<ServiceTarget>; at: number }>();
  readonly #local: LocalViewDeps;

  constructor(deps: ServiceProxyDeps) {
    this.#deps = deps;
    const { config } = deps;
    this.upstream = new Upstream({
      headersTimeoutMs: config.proxyHeadersTimeoutMs,
      bodyTimeoutMs: config.proxyBodyTimeoutMs,
      policy: { allowLoopback: config.devMode || config.hostname === 'localhost' },
    });
    const pattern = config.bskyAppViewCdnUrlPattern;
    this.#local = {
      actorStore: deps.actorStore,
      accountManager: deps.accountManager,
      imageUrl: (kind, did, cid) =>
        pattern
          ? pattern.replace('%s', kind).replace('%s', did).replace('%s', cid)
          : `${config.publicUrl}/xrpc/com.atproto.sync.getBlob?did=${encodeURIComponent(did)}&cid=${cid}`,
    };
  }

  /** Answers `req` (for `/xrpc/<nsid>`, a method not served here) from the service that serves it. */
  async forward(nsid: string, req: IncomingMessage, res: ServerResponse, query: string): Promise<void> {
    if (!isValidNsid(nsid)) throw InvalidRequest('invalid xrpc path');
    if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') {
      throw InvalidRequest('XRPC requests only support GET and POST');
    }
    if (isProtectedMethod(nsid)) {
      throw InvalidRequest(
        `Bad token method: ${nsid} manages the account and is never forwarded to another service`,
        'InvalidToken',
      );
    }
    if (nsid === REGISTER_PUSH) {
      const auth = await this.#caller(req, nsid);
      const appView = this.#deps.config.bskyAppViewDid;
      if (auth.oauth) authorizeOAuthForward(auth.oauth.permissions, `${appView}#bsky_appview`, nsid);
      return this.#registerPush(req, res, auth);
    }
    // The target first, as the reference: a bad atproto-proxy header is named before the session.
    const target = await this.target(req, nsid);
    const auth = await this.#caller(req, nsid);
    // An app's token must allow this method on this service (the scope names it as did#id).
    if (auth.oauth) authorizeOAuthForward(auth.oauth.permissions, `${target.did}#${target.serviceId}`, nsid);
    let aud = target.did;
    let lxm = nsid;
    // The AppView calls the feed generator for us, with a token addressed to the generator.
    if (nsid === GET_FEED) {
      aud = await this.#feedGeneratorDid(new URLSearchParams(query).get('feed'));
      lxm = 'app.bsky.feed.getFeedSkeleton';
    }
    const post = req.method === 'POST';
    // A client that goes away before the answer ends the upstream call too.
    const gone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    const started = performance.now();
    const upstream = await this.upstream.send({
      signal: gone.signal,
      url: new URL(`/xrpc/${nsid}${query ? `?${query}` : ''}`, target.origin),
      method: req.method!,
      headers: {
        ...this.#requestHeaders(req),
        'accept-encoding': headerValue(req.headers, 'accept-encoding') ?? 'identity',
        ...(post
          ? {
              'content-type': headerValue(req.headers, 'content-type'),
              'content-encoding': headerValue(req.headers, 'content-encoding'),
              'content-length': headerValue(req.headers, 'content-length'),
            }
          : {}),
        authorization: await this.#authorization(auth, aud, lxm),
      },
      body: post ? req : undefined,
      trusted: target.configured,
    });
    this.#deps.metrics?.observeForwarded(nsid, upstream.statusCode ?? 0, (performance.now() - started) / 1000);
    if (req.method === 'GET' && READ_AFTER_WRITE_METHODS.has(nsid)) {
      return this.#respondReadAfterWrite(nsid, auth.did, query, upstream, req, res);
    }
    await this.#respond(upstream, req, res);
  }

  /** The service for a call: the atproto-proxy header's, or the default for the method. */
  async target(req: IncomingMessage, nsid: string): Promise<ServiceTarget> {
    const header = headerValue(req.headers, 'atproto-proxy')?.trim();
    if (!header) return defaultTarget(this.#deps.config, nsid);
    return this.resolveHeader(header);
  }

  /** Resolves `<did>#<service id>` to its endpoint (cached; concurrent lookups share one). */
  async resolveHeader(header: string): Promise<ServiceTarget> {
    const { did, serviceId } = parseProxyHeader(header);
    const { config } = this.#deps;
    // The configured AppView answers to its own name without a resolution.
    if (config.bskyAppViewDid === did && serviceId === 'bsky_appview' && config.bskyAppViewUrl) {
      return { did, serviceId, origin: new URL(config.bskyAppViewUrl).origin, configured: true };
    }
    const key = `${did}#${serviceId}`;
    const cached = this.#targets.get(key);
    if (cached && Date.now() - cached.at < TARGET_CACHE_TTL_MS) return cached.target;
    const target = this.#resolveService(did, serviceId);
    if (this.#targets.size >= TARGET_CACHE_MAX) this.#targets.delete(this.#targets.keys().next().value as string);
    this.#targets.set(key, { target, at: Date.now() });
    // Failures are not kept: the next call tries again.
    target.catch(() => {
      if (this.#targets.get(key)?.target === target) this.#targets.delete(key);
    });
    return target;
  }

  async #resolveService(did: string, serviceId: string): Promise<ServiceTarget> {
    const webHost = /^did:web:(.+)$/.exec(did)?.[1];
    if (webHost) {
      // Resolving a did:web fetches from its host: the same rule as forwarding applies.
      const problem = this.upstream.problem(new URL(`https://${decodeURIComponent(webHost)}`));
      if (problem) throw InvalidRequest(`could not resolve proxy did ${did}: ${problem}`);
    }
    let doc: DidDocument;
    try {
      doc = await this.#deps.didResolver.resolve(did);
    } catch (err) {
      throw resolutionFailure(did, err);
    }
    const entry = doc.service?.find((s) => s.id === `#${serviceId}` || s.id === `${did}#${serviceId}`);
    const endpoint =
      typeof entry?.serviceEndpoint === 'string' ? normalizeServiceUrl(entry.serviceEndpoint) : undefined;
    if (!endpoint) {
      throw InvalidRequest(
        `could not resolve proxy did service url: the DID document of ${did} has no usable #${serviceId} service`,
      );
    }
    return { did, serviceId, origin: new URL(endpoint).origin, configured: false };
  }

  #requestHeaders(req: IncomingMessage): Record<string, string | undefined> {
    const out: Record<string, string | undefined> = {};
    for (const name of REQUEST_HEADERS) out[name] = headerValue(req.headers, name);
    for (const name of Object.keys(req.headers)) {
      if (name.startsWith('x-atproto-')) out[name] = headerValue(req.headers, name);
    }
    return out;
  }

  /** The signed-in account behind a forwarded call; app passwords reach only what they may. */
  async #caller(req: IncomingMessage, nsid: string): Promise<AccessAuth> {
    const auth = await this.#deps.authVerifier.verify('access', req, { nsid });
    if (auth.scope === AuthScope.AppPass && isPrivilegedMethod(nsid)) {
      throw InvalidRequest(
        `Bad token method: an app password without direct-message access cannot call ${nsid}`,
        'InvalidToken',
      );
    }
    return auth;
  }

  async #authorization(auth: AccessAuth, aud: string, lxm: string): Promise<string> {
    const key = await this.#deps.actorStore.getSigningKey(auth.did);
    return `Bearer ${await mintServiceJwt({ iss: auth.did, aud, lxm, key })}`;
  }

  async #respond(upstream: IncomingMessage, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const status = upstream.statusCode ?? 502;
    if (status >= 400) throw await upstreamError(upstream, status);
    const headers: Record<string, string> = {};
    for (const name of [...CONTENT_HEADERS, ...RESPONSE_HEADERS]) {
      const v = headerValue(upstream.headers, name);
      if (v !== undefined) headers[name] = v;
    }
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      upstream.resume();
      res.end();
      return;
    }
    try {
      // Backpressure both ways; a client that goes away ends the upstream call too.
      await pipeline(upstream, res);
    } catch (err) {
      this.#deps.logger.warn({ err }, 'forwarded response ended early');
      res.destroy();
    }
  }

  /** #respond, with the caller's writes the AppView has not indexed yet merged in (read-after-write.ts). */
  async #respondReadAfterWrite(
    nsid: string,
    did: string,
    query: string,
    upstream: IncomingMessage,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const status = upstream.statusCode ?? 502;
    const rev = headerValue(upstream.headers, 'atproto-repo-rev');
    if (status >= 400) {
      const err = await upstreamError(upstream, status);
      const uri = new URLSearchParams(query).get('uri');
      if (nsid === GET_POST_THREAD && err.error === 'NotFound' && rev && uri?.startsWith(`at://${did}/`)) {
        const local = this.#recordsSince(did, rev);
        const thread = local && localThread(this.#local, did, uri, local);
        if (thread) return sendMerged(res, thread, rev, local);
      }
      throw err;
    }
    const contentType = headerValue(upstream.headers, 'content-type') ?? '';
    const encoding = (headerValue(upstream.headers, 'content-encoding') ?? 'identity').trim().toLowerCase();
    const readable = ['identity', 'gzip', 'x-gzip', 'deflate', 'br'].includes(encoding);
    const local = rev && readable && /application\/json/i.test(contentType) ? this.#recordsSince(did, rev) : undefined;
    if (!local) return this.#respond(upstream, req, res);
    const body = await readSmallBody(upstream, MAX_MERGED_BODY_BYTES);
    const data = parseJson(body);
    if (!data) throw new XrpcError(502, 'UpstreamFailure', 'the AppView answer could not be read');
    let merged = data;
    try {
      merged = mergeLocal(this.#local, nsid, did, data, local);
    } catch (err) {
      this.#deps.logger.warn({ err, nsid }, 'read-after-write merge failed; the AppView answer goes out as it came');
    }
    sendMerged(res, merged, rev!, local, headerValue(upstream.headers, 'atproto-content-labelers'));
  }

  #recordsSince(did: string, rev: string): LocalRecords | undefined {
    try {
      return recordsSinceRev(this.#local, did, rev);
    } catch (err) {
      this.#deps.logger.warn({ err }, 'read-after-write: local records could not be read');
      return undefined;
    }
  }

  /** The DID of the feed generator a getFeed `feed` URI names, from its record at the AppView. */
  async #feedGeneratorDid(feed: string | null): Promise<string> {
    let uri;
    try {
      uri = parseAtUri(feed);
    } catch {
      throw InvalidRequest('feed must be an at-uri of an app.bsky.feed.generator record');
    }
    if (!uri.collection || !uri.rkey)
      throw InvalidRequest('feed must be an at-uri of an app.bsky.feed.generator record');
    const appView = defaultTarget(this.#deps.config, GET_FEED);
    const params = new URLSearchParams({ repo: uri.authority, collection: uri.collection, rkey: uri.rkey });
    const answer = await this.upstream.send({
      url: new URL(`/xrpc/com.atproto.repo.getRecord?${params}`, appView.origin),
      method: 'GET',
      headers: { accept: 'application/json' },
      trusted: true,
    });
    if ((answer.statusCode ?? 502) >= 400) {
      const err = await upstreamError(answer, answer.statusCode ?? 502);
      throw err.status === 400 ? InvalidRequest(`could not resolve feed did: ${err.message}`, 'UnknownFeed') : err;
    }
    const body = await readSmallBody(answer, MAX_SMALL_JSON_BYTES);
    const feedDid = asObject(parseJson(body)?.value)?.did;
    if (typeof feedDid !== 'string' || !isValidDid(feedDid))
      throw InvalidRequest('could not resolve feed did', 'UnknownFeed');
    return feedDid;
  }

  /**
   * registerPush names its notification service in the body (serviceDid): the token is for
   * that service, and it is reached at its DID's #bsky_notif endpoint (or the AppView's URL).
   */
  async #registerPush(req: IncomingMessage, res: ServerResponse, auth: AccessAuth): Promise<void> {
    if (req.method !== 'POST') throw InvalidRequest(`Incorrect HTTP method (${req.method}) expected POST`);
    const body = (await readJsonBody(req, MAX_SMALL_JSON_BYTES)) as { serviceDid?: unknown } | undefined;
    const serviceDid = body?.serviceDid;
    if (typeof serviceDid !== 'string' || !isValidDid(serviceDid)) throw InvalidRequest('serviceDid must be a DID');
    const { config } = this.#deps;
    const target =
      serviceDid === config.bskyAppViewDid && config.bskyAppViewUrl
        ? defaultTarget(config, REGISTER_PUSH)
        : await this.resolveHeader(`${serviceDid}#bsky_notif`);
    const bytes = Buffer.from(JSON.stringify(body), 'utf8');
    const upstream = await this.upstream.send({
      url: new URL(`/xrpc/${REGISTER_PUSH}`, target.origin),
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-length': String(bytes.byteLength),
        'accept-encoding': 'identity',
        authorization: await this.#authorization(auth, serviceDid, REGISTER_PUSH),
      },
      body: bytes,
      trusted: target.configured,
    });
    await this.#respond(upstream, req, res);
  }

  close(): void {
    this.upstream.close();
  }
}

function sendMerged(res: ServerResponse, data: unknown, rev: string, local: LocalRecords, labelers?: string): void {
  const body = Buffer.from(JSON.stringify(data), 'utf8');
  const lag = upstreamLag(local);
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(body.byteLength),
    'atproto-repo-rev': rev,
    ...(labelers ? { 'atproto-content-labelers': labelers } : {}),
    ...(lag !== undefined ? { 'atproto-upstream-lag': String(lag) } : {}),
  });
  res.end(body);
}

/** An upstream 4xx/5xx as the client should see it: its own error name and message. */
async function upstreamError(upstream: IncomingMessage, status: number): Promise<XrpcError> {
  const contentType = headerValue(upstream.headers, 'content-type') ?? '';
  let parsed: Json;
  if (/application\/(?:\w+\+)?json/i.test(contentType)) {
    parsed = parseJson(await readSmallBody(upstream, MAX_ERROR_BODY_BYTES));
  } else {
    upstream.resume();
  }
  const outStatus = status === 500 ? 502 : status >= 400 && status < 600 ? status : 502;
  const error = typeof parsed?.error === 'string' ? parsed.error : (STATUS_NAMES[outStatus] ?? 'UpstreamFailure');
  const message = typeof parsed?.message === 'string' ? parsed.message : `the upstream service answered HTTP ${status}`;
  const headers: Record<string, string> = {};
  for (const name of RESPONSE_HEADERS) {
    const v = headerValue(upstream.headers, name);
    if (v !== undefined) headers[name] = v;
  }
  return new XrpcError(outStatus, error, message, headers);
}

type Json = { [key: string]: unknown } | undefined;

function parseJson(body: Buffer | undefined): Json {
  if (!body) return undefined;
  try {
    return asObject(JSON.parse(body.toString('utf8')));
  } catch {
    return undefined;
  }
}

function asObject(value: unknown): Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}
