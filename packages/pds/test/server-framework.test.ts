import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { createRequestHandler, listen, type RunningServer } from '../src/server.ts';
import type { Nsid } from '@atcute/lexicons';
import * as v from '@atcute/lexicons/validations';
import type { PlainRoute } from '../src/routes.ts';
import { readJsonBody } from '../src/xrpc/body.ts';
import { InvalidRequest } from '../src/xrpc/errors.ts';
import { type XrpcMethod, xrpcMethod } from '../src/xrpc/handler.ts';
import { startTestPds, type TestPds } from './harness.ts';

const nsid = (name: string) => `test.portage.${name}` as Nsid;

// A small method table exercising each part of the framework without any real service.
const testMethods: XrpcMethod[] = [
  xrpcMethod(
    v.procedure(nsid('echo'), {
      params: null,
      input: { type: 'lex', schema: v.object({ text: v.string() }) },
      output: { type: 'lex', schema: v.object({ text: v.string() }) },
    }),
    {
      auth: 'none',
      maxInputBytes: 1000,
      async handler({ input }) {
        return { json: { text: input.text } };
      },
    },
  ),
  xrpcMethod(
    v.query(nsid('query'), {
      params: v.object({
        name: v.string(),
        limit: v.optional(v.constrain(v.integer(), [v.integerRange(1, 100)]), 50),
      }),
      output: null,
    }),
    {
      auth: 'none',
      async handler({ params }) {
        return { json: params };
      },
    },
  ),
  xrpcMethod(
    v.procedure(nsid('count'), {
      params: null,
      input: { type: 'blob' },
      output: null,
    }),
    {
      auth: 'none',
      maxInputBytes: 64,
      async handler({ input, inputEncoding }) {
        let total = 0;
        for await (const chunk of input) total += chunk.byteLength;
        return { json: { total, encoding: inputEncoding } };
      },
    },
  ),
  xrpcMethod(
    v.query(nsid('enum'), {
      params: v.object({ color: v.literalEnum(['red', 'green']) }),
      output: { type: 'lex', schema: v.object({ color: v.string() }) },
    }),
    {
      auth: 'none',
      async handler({ params }) {
        return { json: { color: params.color } };
      },
    },
  ),
  xrpcMethod(
    v.query(nsid('badOutput'), {
      params: null,
      output: { type: 'lex', schema: v.object({ count: v.integer() }) },
    }),
    {
      auth: 'none',
      async handler() {
        return { json: { count: 'many' } };
      },
    },
  ),
  xrpcMethod(v.query(nsid('boom'), { params: null, output: null }), {
    auth: 'none',
    async handler() {
      throw new Error('secret internal detail');
    },
  }),
  xrpcMethod(v.query(nsid('reject'), { params: null, output: null }), {
    auth: 'none',
    async handler() {
      throw InvalidRequest('nope', 'CustomName');
    },
  }),
];

// Plain routes beyond GET: a form post and a resource that can be replaced and deleted.
const testRoutes: PlainRoute[] = [
  {
    path: '/test/form',
    methods: ['POST'],
    async handler({ req, res }) {
      const body = JSON.stringify({ received: await readJsonBody(req, 1000) });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(body);
    },
  },
  {
    path: '/test/resource',
    methods: ['GET', 'PUT', 'DELETE'],
    async handler({ req, res }) {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(req.method === 'HEAD' ? undefined : `${req.method} ok`);
    },
  },
];

describe('XRPC framework', () => {
  let pds: TestPds;
  let server: RunningServer;
  let base: string;
  before(async () => {
    pds = await startTestPds();
    server = await listen(createRequestHandler(pds.ctx, testMethods, testRoutes), 0, '127.0.0.1');
    base = server.localUrl;
  });
  after(async () => {
    await server.close();
    await pds.close();
  });

  it('answers /xrpc/_health with the version', async () => {
    const res = await fetch(`${pds.url}/xrpc/_health`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { version: pds.ctx.config.version });
  });

  it('serves describeServer from the real routing table', async () => {
    const res = await fetch(`${pds.url}/xrpc/com.atproto.server.describeServer`);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.did, 'did:web:localhost');
    assert.deepEqual(body.availableUserDomains, ['.test']);
    assert.equal(body.inviteCodeRequired, false);
  });

  it('answers unknown methods with 501 MethodNotImplemented', async () => {
    const res = await fetch(`${pds.url}/xrpc/com.example.nothing`);
    assert.equal(res.status, 501);
    assert.deepEqual(await res.json(), { error: 'MethodNotImplemented', message: 'Method Not Implemented' });
  });

  it('answers CORS preflight and exposes rate-limit headers', async () => {
    const res = await fetch(`${base}/xrpc/test.portage.echo`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-headers': 'authorization,content-type' },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.equal(res.headers.get('access-control-allow-headers'), 'authorization,content-type');
    assert.match(res.headers.get('access-control-allow-methods') ?? '', /POST/);
    const get = await fetch(`${base}/xrpc/test.portage.query?name=a`, { headers: { origin: 'https://app.example' } });
    assert.match(get.headers.get('access-control-expose-headers') ?? '', /RateLimit-Remaining/);
  });

  it('parses JSON input and names missing fields', async () => {
    const ok = await post(base, 'test.portage.echo', JSON.stringify({ text: 'hi' }));
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { text: 'hi' });
    const missing = await post(base, 'test.portage.echo', JSON.stringify({}));
    assert.equal(missing.status, 400);
    assert.deepEqual(await missing.json(), { error: 'InvalidRequest', message: 'Missing required key "text" at $' });
  });

  it('rejects malformed JSON with 400 InvalidRequest', async () => {
    const res = await post(base, 'test.portage.echo', '{"text": ');
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.equal(body.error, 'InvalidRequest');
    assert.match(body.message, /not valid JSON/);
  });

  it('rejects a body with the wrong content type', async () => {
    const res = await post(base, 'test.portage.echo', 'text=hi', 'text/plain');
    assert.equal(res.status, 400);
    assert.match((await res.json()).message, /Wrong request encoding/);
  });

  it('refuses JSON bodies over the limit with 413, also when gzipped', async () => {
    const big = JSON.stringify({ text: 'x'.repeat(2000) });
    const res = await post(base, 'test.portage.echo', big);
    assert.equal(res.status, 413);
    assert.equal((await res.json()).error, 'PayloadTooLarge');
    const zipped = await fetch(`${base}/xrpc/test.portage.echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(Buffer.from(big)),
    });
    assert.equal(zipped.status, 413);
    const small = await fetch(`${base}/xrpc/test.portage.echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(Buffer.from(JSON.stringify({ text: 'zipped' }))),
    });
    assert.deepEqual(await small.json(), { text: 'zipped' });
  });

  it('streams raw bodies to the handler under the limit', async () => {
    const ok = await post(base, 'test.portage.count', new Uint8Array(40), 'image/png');
    assert.deepEqual(await ok.json(), { total: 40, encoding: 'image/png' });
    const tooBig = await post(base, 'test.portage.count', new Uint8Array(65), 'image/png');
    assert.equal(tooBig.status, 413);
  });

  it('closes the connection after refusing a body still being sent, so the next request is not read as its rest', async () => {
    // A chunked upload that keeps coming after the 413: fetch (undici) stops sending the body and
    // would reuse the connection for the next request, which the server would take for more body.
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= 4 * 1024 * 1024) {
          controller.close();
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
        controller.enqueue(new Uint8Array(16 * 1024));
        sent += 16 * 1024;
      },
    });
    const refused = await fetch(`${base}/xrpc/test.portage.count`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body,
      duplex: 'half',
    } as RequestInit);
    assert.equal(refused.status, 413);
    assert.equal(refused.headers.get('connection'), 'close');
    await refused.arrayBuffer();
    for (let i = 0; i < 3; i++) {
      const next = await fetch(`${base}/xrpc/test.portage.query?name=after&limit=${i + 1}`, {
        signal: AbortSignal.timeout(5000),
      });
      assert.deepEqual(await next.json(), { name: 'after', limit: i + 1 });
    }
  });

  it('checks query params: required, integer, range', async () => {
    assert.deepEqual(await (await fetch(`${base}/xrpc/test.portage.query?name=a&limit=5`)).json(), {
      name: 'a',
      limit: 5,
    });
    const missing = await fetch(`${base}/xrpc/test.portage.query`);
    assert.equal(missing.status, 400);
    assert.deepEqual(await missing.json(), {
      error: 'InvalidRequest',
      message: 'Invalid test.portage.query params: Missing required key "name"',
    });
    const notInt = await fetch(`${base}/xrpc/test.portage.query?name=a&limit=ten`);
    assert.equal(notInt.status, 400);
    assert.equal(
      (await notInt.json()).message,
      'Invalid test.portage.query params: Expected integer value type (got "ten")',
    );
    const tooHigh = await fetch(`${base}/xrpc/test.portage.query?name=a&limit=101`);
    assert.equal(tooHigh.status, 400);
    assert.equal(
      (await tooHigh.json()).message,
      'Invalid test.portage.query params: integer too big (maximum 100, got 101)',
    );
  });

  it('refuses a value outside a closed enum, naming the allowed ones', async () => {
    assert.deepEqual(await (await fetch(`${base}/xrpc/test.portage.enum?color=red`)).json(), { color: 'red' });
    const res = await fetch(`${base}/xrpc/test.portage.enum?color=blue`);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      error: 'InvalidRequest',
      message: 'Invalid test.portage.enum params: Expected one of "red" or "green" (got "blue")',
    });
  });

  it('checks JSON input types and outputs against the lexicon', async () => {
    const wrongType = await post(base, 'test.portage.echo', JSON.stringify({ text: ['a', 'b', 'c'] }));
    assert.deepEqual(await wrongType.json(), {
      error: 'InvalidRequest',
      message: 'Expected string value type (got ["a", "b", ...]) at $.text',
    });
    // Development mode (the test harness) checks outputs: a handler that breaks its lexicon is a 500.
    const badOutput = await fetch(`${base}/xrpc/test.portage.badOutput`);
    assert.equal(badOutput.status, 500);
    assert.equal((await badOutput.json()).error, 'InternalServerError');
  });

  it('serves plain routes for the methods they declare, and 405 with Allow for others', async () => {
    const form = await fetch(`${base}/test/form`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ a: 1 }),
    });
    assert.equal(form.status, 200);
    assert.deepEqual(await form.json(), { received: { a: 1 } });
    const getForm = await fetch(`${base}/test/form`);
    assert.equal(getForm.status, 405);
    assert.equal(getForm.headers.get('allow'), 'POST');
    assert.equal((await getForm.json()).error, 'MethodNotAllowed');
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const res = await fetch(`${base}/test/resource`, { method });
      assert.equal(res.status, 200, method);
      assert.equal(await res.text(), `${method} ok`);
    }
    const head = await fetch(`${base}/test/resource`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    const patch = await fetch(`${base}/test/resource`, { method: 'PATCH' });
    assert.equal(patch.status, 405);
    assert.equal(patch.headers.get('allow'), 'GET, PUT, DELETE, HEAD');
    const postHealth = await fetch(`${pds.url}/xrpc/_health`, { method: 'POST' });
    assert.equal(postHealth.status, 405);
    assert.equal(postHealth.headers.get('allow'), 'GET, HEAD');
  });

  it('rejects the wrong HTTP method', async () => {
    const res = await fetch(`${base}/xrpc/test.portage.echo`);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      error: 'InvalidRequest',
      message: 'Incorrect HTTP method (GET) expected POST',
    });
  });

  it('maps thrown XrpcErrors and hides internal errors', async () => {
    const custom = await fetch(`${base}/xrpc/test.portage.reject`);
    assert.equal(custom.status, 400);
    assert.deepEqual(await custom.json(), { error: 'CustomName', message: 'nope' });
    const boom = await fetch(`${base}/xrpc/test.portage.boom`);
    assert.equal(boom.status, 500);
    assert.deepEqual(await boom.json(), { error: 'InternalServerError', message: 'Internal Server Error' });
  });

  it('answers unknown plain paths with 404 and a JSON error', async () => {
    const res = await fetch(`${base}/nowhere`);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).error, 'NotFound');
  });
});

function post(
  base: string,
  nsid: string,
  body: string | Uint8Array<ArrayBuffer>,
  contentType = 'application/json',
): Promise<Response> {
  return fetch(`${base}/xrpc/${nsid}`, { method: 'POST', headers: { 'content-type': contentType }, body });
}
