import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { XrpcClient, XrpcClientError } from '../src/xrpc/client.ts';
import { exhaustedBudgetDelay, retryDelayFromHeaders } from '../src/xrpc/rate-limit.ts';

type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;
let server: Server;
let base: string;
let handler: Handler = (_req, _body, res) => res.end();

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks), res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

function json(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(value));
}

describe('XrpcClient', () => {
  it('sends queries as GET with encoded params, including arrays, and the client headers', async () => {
    let seen: IncomingMessage | undefined;
    handler = (req, _b, res) => {
      seen = req;
      json(res, 200, { ok: true });
    };
    let token = 'one';
    const client = new XrpcClient({ service: `${base}/`, headers: () => ({ authorization: `Bearer ${token}` }) });
    assert.deepEqual(
      await client.query('com.example.getThing', { a: 'x y', n: 3, list: ['p', 'q'], skip: undefined }),
      {
        ok: true,
      },
    );
    assert.equal(seen!.method, 'GET');
    assert.equal(seen!.url, '/xrpc/com.example.getThing?a=x+y&n=3&list=p&list=q');
    assert.equal(seen!.headers.authorization, 'Bearer one');
    token = 'two';
    await client.query('com.example.getThing');
    assert.equal(seen!.headers.authorization, 'Bearer two');
  });

  it('sends JSON procedures and binary procedures, including a streamed body', async () => {
    const received: { type?: string; body: string }[] = [];
    handler = (req, body, res) => {
      received.push({ type: req.headers['content-type'], body: body.toString() });
      res.writeHead(200);
      res.end();
    };
    const client = new XrpcClient({ service: base });
    assert.equal(await client.procedure('com.example.doThing', { a: 1 }), undefined);
    await client.procedure('com.example.upload', new TextEncoder().encode('raw'), { encoding: 'image/png' });
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('str'));
        c.enqueue(new TextEncoder().encode('eam'));
        c.close();
      },
    });
    await client.procedure('com.example.upload', stream, { encoding: 'application/vnd.ipld.car' });
    assert.deepEqual(received, [
      { type: 'application/json', body: '{"a":1}' },
      { type: 'image/png', body: 'raw' },
      { type: 'application/vnd.ipld.car', body: 'stream' },
    ]);
  });

  it('turns error bodies into XrpcClientError with the XRPC error name and headers', async () => {
    handler = (_r, _b, res) =>
      json(res, 401, { error: 'AuthFactorTokenRequired', message: 'check your email' }, { 'x-test': '1' });
    const client = new XrpcClient({ service: base });
    const err = await client.procedure('com.atproto.server.createSession', {}).catch((e: unknown) => e);
    assert.ok(err instanceof XrpcClientError);
    assert.equal(err.status, 401);
    assert.equal(err.error, 'AuthFactorTokenRequired');
    assert.match(err.message, /check your email/);
    assert.equal(err.headers.get('x-test'), '1');
    assert.equal(err.retryable, false);
  });

  it('names a generic error from the status when the body is not XRPC JSON', async () => {
    handler = (_r, _b, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>bad gateway</html>');
    };
    const err = await new XrpcClient({ service: base }).query('com.example.x').catch((e: unknown) => e);
    assert.ok(err instanceof XrpcClientError);
    assert.equal(err.error, 'InternalServerError');
    assert.equal(err.retryable, true);
  });

  it('reports a refused connection and a timeout as status 0', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const refused = await new XrpcClient({ service: `http://127.0.0.1:${port}` })
      .query('com.example.x')
      .catch((e) => e);
    assert.ok(refused instanceof XrpcClientError);
    assert.equal(refused.status, 0);
    assert.equal(refused.error, 'NetworkError');
    assert.equal(refused.retryable, true);

    handler = (_r, _b, res) => setTimeout(() => json(res, 200, {}), 500);
    const slow = await new XrpcClient({ service: base }).query('com.example.x', {}, { timeoutMs: 50 }).catch((e) => e);
    assert.ok(slow instanceof XrpcClientError);
    assert.equal(slow.error, 'Timeout');
  });

  it('gives raw access to a streamed response body', async () => {
    handler = (_r, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
      res.write('part1-');
      setTimeout(() => res.end('part2'), 10);
    };
    const res = await new XrpcClient({ service: base }).request('com.atproto.sync.getRepo', {
      method: 'GET',
      params: { did: 'did:plc:x' },
    });
    assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.car');
    assert.equal(await res.text(), 'part1-part2');
  });

  it('fails a body the server stops sending for timeoutMs, but not a long body that keeps coming or a slow reader', async () => {
    // Headers and half an answer, then silence with the connection open.
    let stalled: ServerResponse | undefined;
    handler = (_r, _b, res) => {
      stalled = res;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write('first half');
    };
    const client = new XrpcClient({ service: base });
    const started = Date.now();
    const res = await client.request('com.atproto.sync.getBlob', { method: 'GET', timeoutMs: 200 });
    const err = await res.arrayBuffer().catch((e: unknown) => e);
    assert.ok(err instanceof XrpcClientError, String(err));
    assert.equal(err.error, 'Timeout');
    assert.equal(err.status, 0);
    assert.equal(err.retryable, true);
    assert.match(
      err.message,
      /com\.atproto\.sync\.getBlob at http:\/\/127\.0\.0\.1:\d+: the answer stopped for 200 ms/,
    );
    assert.ok(Date.now() - started < 2000);
    // The request was aborted: the server sees its connection closed.
    await new Promise<void>((r) => (stalled!.destroyed ? r() : stalled!.on('close', () => r())));

    // The same through query(): the JSON answer's silence keeps its name.
    const query = await client.query('com.example.x', {}, { timeoutMs: 200 }).catch((e: unknown) => e);
    assert.ok(query instanceof XrpcClientError, String(query));
    assert.equal(query.error, 'Timeout');

    // Ten chunks 60 ms apart: 600 ms in all, never 200 ms of silence.
    handler = (_r, _b, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let sent = 0;
      const next = () => (++sent === 10 ? res.end(`${sent}.`) : (res.write(`${sent}.`), setTimeout(next, 60)));
      next();
    };
    const long = await client.request('com.atproto.sync.getBlob', { method: 'GET', timeoutMs: 200 });
    assert.equal(await long.text(), '1.2.3.4.5.6.7.8.9.10.');

    // A reader that pauses 400 ms between reads is not a silent server.
    const paused = await client.request('com.atproto.sync.getBlob', { method: 'GET', timeoutMs: 200 });
    const reader = paused.body!.getReader();
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
      await new Promise((r) => setTimeout(r, 400));
    }
    assert.equal(text, '1.2.3.4.5.6.7.8.9.10.');
  });

  it('rejects bad service URLs and NSIDs with typed errors', async () => {
    assert.throws(() => new XrpcClient({ service: 'not a url' }), /not a valid service URL/);
    assert.throws(() => new XrpcClient({ service: 'ftp://x' }), /must be http/);
    await assert.rejects(new XrpcClient({ service: base }).query('nodots'), /not a valid NSID/);
  });
});

describe('rate-limit headers', () => {
  it('reads Retry-After in seconds and as a date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(retryDelayFromHeaders(new Headers({ 'retry-after': '3' }), now), 3000);
    assert.equal(retryDelayFromHeaders(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }), now), 5000);
  });
  it('reads RateLimit-Reset as delta seconds or as a Unix time', () => {
    const now = 1_800_000_000_000;
    assert.equal(retryDelayFromHeaders(new Headers({ 'ratelimit-reset': '2' }), now), 2000);
    assert.equal(retryDelayFromHeaders(new Headers({ 'ratelimit-reset': '1800000004' }), now), 4000);
    assert.equal(retryDelayFromHeaders(new Headers(), now), undefined);
  });
  it('says to pause only when the remaining budget is zero', () => {
    assert.equal(exhaustedBudgetDelay(new Headers({ 'ratelimit-remaining': '5', 'ratelimit-reset': '2' })), undefined);
    assert.equal(exhaustedBudgetDelay(new Headers({ 'ratelimit-remaining': '0', 'ratelimit-reset': '2' })), 2000);
  });
});
