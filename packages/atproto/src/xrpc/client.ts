/**
 * A small XRPC client (https://atproto.com/specs/xrpc) over the platform's `fetch`, so the same
 * code runs in Node and in browsers. It knows the wire conventions (query = GET with params in the
 * query string, procedure = POST with a JSON or binary body, errors as `{error, message}`) and
 * nothing about sessions: callers pass headers (e.g. Authorization) through `headers()`, which is
 * called for every request so a refreshed token is picked up without rebuilding the client.
 *
 * Every failure, including the network ones, becomes an XrpcClientError, so retry logic can look
 * at one `status` (0 for "no HTTP answer at all") and one `error` name.
 */
import { AtprotoError } from '../errors.ts';

export type XrpcParamValue = string | number | boolean | undefined | null | readonly (string | number | boolean)[];
export type XrpcParams = Record<string, XrpcParamValue>;

/** A binary request body: sent as-is with the given encoding instead of being JSON-encoded. */
export type XrpcBinaryBody = Uint8Array | ReadableStream<Uint8Array> | Blob | ArrayBuffer;

export interface XrpcCallOptions {
  /** Extra headers for this call only (they win over the client's own headers). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /**
   * Abort when the server stays silent this long: no response headers within it, or no new bytes
   * of the body while the caller waits for them (a body may take as long as it needs in all, and
   * a caller that reads slowly is not the server's silence). Off by default: big repo exports and
   * imports legitimately take minutes, and a fixed client timeout is what breaks them.
   */
  timeoutMs?: number;
  /** Content type of a binary body (default application/octet-stream). */
  encoding?: string;
}

export interface XrpcRequest extends XrpcCallOptions {
  method: 'GET' | 'HEAD' | 'POST';
  params?: XrpcParams;
  /** JSON-serialisable value, or a binary body (see XrpcBinaryBody). */
  body?: unknown;
}

export interface XrpcClientOptions {
  /** Base URL of the service, e.g. https://pds.example.com (a path prefix is allowed). */
  service: string;
  fetch?: typeof fetch;
  /** Called before every request; e.g. `() => ({ authorization: 'Bearer ...' })`. */
  headers?: () => Record<string, string>;
}

/**
 * An XRPC call that did not succeed. `status` is the HTTP status, or 0 when the request never got
 * an answer (connection refused, reset, timeout, aborted); `error` is the XRPC error name from the
 * body (`InvalidRequest`, `AuthFactorTokenRequired`...) or a generic one derived from the status.
 */
export class XrpcClientError extends AtprotoError {
  readonly status: number;
  readonly error: string;
  readonly headers: Headers;
  readonly nsid: string;
  constructor(
    nsid: string,
    status: number,
    error: string,
    message: string,
    headers: Headers = new Headers(),
    options?: ErrorOptions,
  ) {
    super(error, message, options);
    this.nsid = nsid;
    this.status = status;
    this.error = error;
    this.headers = headers;
  }

  /** True for failures worth retrying as-is: no answer, 5xx, 408 and 429. */
  get retryable(): boolean {
    return this.status === 0 || this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

const NSID_SHAPE =
  /^[a-zA-Z]([a-zA-Z0-9-]{0,62})?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+\.[a-zA-Z][a-zA-Z0-9]*$/;

/** Node's fetch streams request bodies over HTTP/1.1; browsers cannot be relied on to (see request). */
const STREAMS_REQUEST_BODIES =
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';

export class XrpcClient {
  readonly service: string;
  readonly #fetch: typeof fetch;
  readonly #headers: () => Record<string, string>;

  constructor(opts: XrpcClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.service);
    } catch {
      throw new AtprotoError('InvalidServiceUrl', `not a valid service URL: "${opts.service}"`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new AtprotoError('InvalidServiceUrl', `service URL must be http(s): "${opts.service}"`);
    }
    this.service = url.href.replace(/\/+$/, '');
    this.#fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.#headers = opts.headers ?? (() => ({}));
  }

  /** A GET call; resolves to the parsed JSON body (or undefined for an empty body). */
  async query<T = unknown>(nsid: string, params?: XrpcParams, opts: XrpcCallOptions = {}): Promise<T> {
    const res = await this.request(nsid, { ...opts, method: 'GET', params });
    return (await readJsonBody(nsid, res)) as T;
  }

  /** A POST call; `input` is JSON-encoded unless it is a binary body. */
  async procedure<T = unknown>(
    nsid: string,
    input?: unknown,
    opts: XrpcCallOptions & { params?: XrpcParams } = {},
  ): Promise<T> {
    const res = await this.request(nsid, { ...opts, method: 'POST', body: input });
    return (await readJsonBody(nsid, res)) as T;
  }

  /**
   * The raw call: resolves to the Response of a 2xx answer with its body unread (to stream it,
   * e.g. getRepo or getBlob), and throws XrpcClientError for anything else. In Node a
   * ReadableStream body is sent streaming (`duplex: 'half'`), so an upload never has to sit in
   * memory whole. Browsers stream a request body only over HTTP/2 or later (Chromium), or not at
   * all (Firefox, Safari), and which protocol a server speaks is not known before the request
   * fails: there the stream is gathered into a Blob first, which browsers keep on disk when large,
   * and bytes are sent as a Blob as well.
   */
  async request(nsid: string, req: XrpcRequest): Promise<Response> {
    if (!NSID_SHAPE.test(nsid)) throw new AtprotoError('InvalidNsid', `not a valid NSID: "${nsid}"`);
    const url = `${this.service}/xrpc/${nsid}${encodeParams(req.params)}`;
    const headers = new Headers(this.#headers());
    for (const [k, v] of Object.entries(req.headers ?? {})) headers.set(k, v);
    const init: RequestInit & { duplex?: 'half' } = { method: req.method, headers };
    if (req.body !== undefined && req.method === 'POST') {
      if (isBinaryBody(req.body)) {
        if (!headers.has('content-type')) headers.set('content-type', req.encoding ?? 'application/octet-stream');
        const body = req.body as XrpcBinaryBody;
        if (STREAMS_REQUEST_BODIES) {
          init.body = body as BodyInit;
          if (body instanceof ReadableStream) init.duplex = 'half';
        } else if (body instanceof ReadableStream) {
          init.body = await new Response(body).blob();
        } else if (body instanceof Blob) {
          init.body = body;
        } else {
          // Bytes go as a Blob too: Chromium hands a Blob to its network process by reference,
          // while bytes given to fetch as they are get copied through its message channels at a
          // far higher cost, enough to make a run of image uploads CPU-bound.
          init.body = new Blob([body as Uint8Array<ArrayBuffer> | ArrayBuffer]);
        }
      } else {
        headers.set('content-type', 'application/json');
        init.body = JSON.stringify(req.body);
      }
    }

    const controller = new AbortController();
    const onAbort = () => controller.abort(req.signal?.reason);
    if (req.signal?.aborted) onAbort();
    req.signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer =
      req.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            controller.abort(new Error('timeout'));
          }, req.timeoutMs)
        : undefined;
    init.signal = controller.signal;

    let res: Response;
    try {
      res = await this.#fetch(url, init);
    } catch (err) {
      const why = timedOut
        ? `no answer within ${req.timeoutMs} ms`
        : req.signal?.aborted
          ? 'aborted'
          : describeNetworkError(err);
      throw new XrpcClientError(
        nsid,
        0,
        timedOut ? 'Timeout' : 'NetworkError',
        `${nsid} at ${this.service}: ${why}`,
        undefined,
        {
          cause: err,
        },
      );
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    // Detach the caller's signal only after the body is consumed would be ideal, but the caller
    // owns the Response from here; keep forwarding aborts so they can still cancel a stream.
    if (res.ok) {
      if (req.timeoutMs === undefined || !res.body) return res;
      // Made only if it happens: an error's stack is not free, and most answers just arrive.
      const silence = () =>
        new XrpcClientError(
          nsid,
          0,
          'Timeout',
          `${nsid} at ${this.service}: the answer stopped for ${req.timeoutMs} ms`,
        );
      return abortingOnSilence(res, req.timeoutMs, controller, silence);
    }
    req.signal?.removeEventListener('abort', onAbort);
    throw await errorFromResponse(nsid, this.service, res);
  }
}

/**
 * The response with a body that fails (and aborts the request, freeing the connection) when a read
 * waits `ms` without a byte: a server that stalls mid-answer would otherwise hold the caller, and
 * a process that has nothing else to do, forever. Only waiting reads count, so a consumer that
 * pauses (backpressure from an upload it feeds) is never taken for a silent server.
 */
function abortingOnSilence(
  res: Response,
  ms: number,
  controller: AbortController,
  silence: () => XrpcClientError,
): Response {
  const reader = res.body!.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(out) {
      let silent = false;
      const timer = setTimeout(() => {
        silent = true;
        controller.abort(new Error('silence'));
      }, ms);
      try {
        const { done, value } = await reader.read();
        if (done) out.close();
        else out.enqueue(value);
      } catch (err) {
        out.error(silent ? silence() : err);
      } finally {
        clearTimeout(timer);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

function isBinaryBody(body: unknown): boolean {
  return (
    body instanceof Uint8Array ||
    body instanceof ArrayBuffer ||
    body instanceof ReadableStream ||
    (typeof Blob !== 'undefined' && body instanceof Blob)
  );
}

function encodeParams(params?: XrpcParams): string {
  if (!params) return '';
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) for (const item of value) search.append(key, String(item));
    else search.append(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

async function readJsonBody(nsid: string, res: Response): Promise<unknown> {
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    if (err instanceof XrpcClientError) throw err; // the server fell silent (timeoutMs)
    throw new XrpcClientError(
      nsid,
      0,
      'NetworkError',
      `${nsid}: the answer was cut off (${describeNetworkError(err)})`,
      res.headers,
      {
        cause: err,
      },
    );
  }
  if (text === '') return undefined;
  const type = res.headers.get('content-type') ?? '';
  if (!type.includes('json')) return text;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new XrpcClientError(
      nsid,
      res.status,
      'InvalidResponse',
      `${nsid}: the server answered with invalid JSON`,
      res.headers,
      {
        cause: err,
      },
    );
  }
}

async function errorFromResponse(nsid: string, service: string, res: Response): Promise<XrpcClientError> {
  let name = genericErrorName(res.status);
  let message = `${nsid} at ${service} failed with HTTP ${res.status}`;
  try {
    const text = await res.text();
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof body.error === 'string' && body.error) name = body.error;
    if (typeof body.message === 'string' && body.message) message = `${message}: ${body.message}`;
    else if (typeof body.error === 'string') message = `${message}: ${body.error}`;
  } catch {
    // A non-JSON error body (a proxy's HTML page, a cut connection): the status says enough.
  }
  return new XrpcClientError(nsid, res.status, name, message, res.headers);
}

function genericErrorName(status: number): string {
  if (status === 400) return 'InvalidRequest';
  if (status === 401) return 'AuthenticationRequired';
  if (status === 403) return 'Forbidden';
  if (status === 404) return 'NotFound';
  if (status === 413) return 'PayloadTooLarge';
  if (status === 429) return 'RateLimitExceeded';
  if (status === 501) return 'MethodNotImplemented';
  if (status >= 500) return 'InternalServerError';
  return 'UnknownError';
}

function describeNetworkError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return `${err.message} (${typeof code === 'string' ? `${code}: ` : ''}${cause.message})`;
  }
  return err.message;
}
