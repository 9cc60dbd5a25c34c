/**
 * One HTTP exchange with an upstream service, streamed both ways, in bounded time: the
 * connection and the response headers must come within `headersTimeoutMs`, and once bodies
 * flow neither side may fall silent for longer than `bodyTimeoutMs`. Failures come back as
 * XRPC errors a client can act on (502 unreachable, 504 timed out, 400 forbidden address).
 */
import type { lookup as dnsLookup } from 'node:dns';
import { Agent as HttpAgent, type IncomingHttpHeaders, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { InvalidRequest, UpstreamFailure, XrpcError } from '../xrpc/errors.ts';
import { type AddressPolicy, ForbiddenUpstream, guardedLookup, urlProblem } from './address-policy.ts';

export interface UpstreamOptions {
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  policy: AddressPolicy;
  /** Name resolution under the policy's check (default node:dns); tests give a fake one. */
  dnsLookup?: typeof dnsLookup;
}

export interface UpstreamRequest {
  url: URL;
  method: string;
  headers: Record<string, string | undefined>;
  /** The request body, piped as it arrives (a client's request, or bytes already read). */
  body?: Readable | Uint8Array;
  /** Skip the address policy: the operator configured this endpoint. */
  trusted?: boolean;
  /** Abandons the call (the client went away). */
  signal?: AbortSignal;
}

export function UpstreamTimeout(message: string): XrpcError {
  return new XrpcError(504, 'UpstreamTimeout', message);
}

export class Upstream {
  readonly #opts: UpstreamOptions;
  // Keep-alive pools; a name's addresses are checked when a pooled socket is first connected.
  readonly #http: HttpAgent;
  readonly #https: HttpsAgent;
  readonly #trustedHttp = new HttpAgent({ keepAlive: true });
  readonly #trustedHttps = new HttpsAgent({ keepAlive: true });

  constructor(opts: UpstreamOptions) {
    this.#opts = opts;
    const lookup = guardedLookup(opts.policy, opts.dnsLookup);
    this.#http = new HttpAgent({ keepAlive: true, lookup } as ConstructorParameters<typeof HttpAgent>[0]);
    this.#https = new HttpsAgent({ keepAlive: true, lookup } as ConstructorParameters<typeof HttpsAgent>[0]);
  }

  /** Why `url` may not be reached by a caller-chosen forward, or undefined. */
  problem(url: URL): string | undefined {
    return urlProblem(url, this.#opts.policy);
  }

  /** Resolves with the response once its headers arrived; its body is bounded by the silence timeout. */
  send(r: UpstreamRequest): Promise<IncomingMessage> {
    const { headersTimeoutMs, bodyTimeoutMs } = this.#opts;
    if (!r.trusted) {
      const problem = this.problem(r.url);
      if (problem) return Promise.reject(forbidden(r.url, problem));
    }
    const https = r.url.protocol === 'https:';
    const agent = r.trusted ? (https ? this.#trustedHttps : this.#trustedHttp) : https ? this.#https : this.#http;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.headers)) if (v !== undefined) headers[k] = v;

    return new Promise((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(r.url, { method: r.method, headers, agent, signal: r.signal });
      let settled = false;
      const fail = (err: XrpcError): void => {
        if (!settled) {
          settled = true;
          reject(err);
        }
        req.destroy(err);
      };
      const headersTimer = setTimeout(
        () => fail(UpstreamTimeout(`${r.url.origin} did not answer within ${headersTimeoutMs} ms`)),
        headersTimeoutMs,
      );
      // Socket inactivity, either way: a stalled upload or a stalled download.
      req.setTimeout(bodyTimeoutMs, () => fail(UpstreamTimeout(`${r.url.origin} fell silent for ${bodyTimeoutMs} ms`)));
      req.on('error', (err) => {
        clearTimeout(headersTimer);
        if (settled) return;
        settled = true;
        reject(err instanceof XrpcError ? err : unreachable(r.url, err));
      });
      req.on('response', (res) => {
        clearTimeout(headersTimer);
        settled = true;
        resolve(res);
      });
      const body = r.body;
      if (body === undefined) {
        req.end();
      } else if (body instanceof Uint8Array) {
        req.end(body);
      } else {
        body.on('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }

  close(): void {
    this.#http.destroy();
    this.#https.destroy();
    this.#trustedHttp.destroy();
    this.#trustedHttps.destroy();
  }
}

function forbidden(url: URL, problem: string): XrpcError {
  return InvalidRequest(`the service endpoint ${url.origin} may not be reached from this server: ${problem}`);
}

function unreachable(url: URL, err: Error): XrpcError {
  if (err instanceof ForbiddenUpstream) return forbidden(url, err.message);
  const code = (err as NodeJS.ErrnoException).code;
  return UpstreamFailure(`Upstream service unreachable: ${url.origin} (${code ?? err.message})`);
}

/**
 * Reads a small body whole (an upstream error, a record), decoding its content-encoding;
 * gives up past `maxBytes`. Undefined when it cannot be read.
 */
export async function readSmallBody(res: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  let stream: Readable = res;
  const encoding = String(res.headers['content-encoding'] ?? '')
    .trim()
    .toLowerCase();
  if (encoding === 'gzip' || encoding === 'x-gzip') stream = res.pipe(createGunzip());
  else if (encoding === 'deflate') stream = res.pipe(createInflate());
  else if (encoding === 'br') stream = res.pipe(createBrotliDecompress());
  else if (encoding !== '' && encoding !== 'identity') {
    res.resume();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      size += (chunk as Buffer).byteLength;
      if (size > maxBytes) {
        res.destroy();
        return undefined;
      }
      chunks.push(chunk as Buffer);
    }
  } catch {
    return undefined;
  }
  return Buffer.concat(chunks);
}

/** A header's value as one string (repeated headers joined), or undefined. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}
