/**
 * Forwarding against small local services: what reaches the upstream (path, query, body,
 * headers, a service JWT the account's key signed), what comes back, and every bad input or
 * broken upstream answered with a clear XRPC error in bounded time, leaving the server fine.
 */
import assert from 'node:assert/strict';
import type { lookup } from 'node:dns';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getAtprotoSigningKey } from '@portage/atproto/identity/did-document';
import { verifyServiceJwt } from '../src/auth/service-auth.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { addressProblem, urlProblem } from '../src/proxy/address-policy.ts';
import { parseProxyHeader } from '../src/proxy/targets.ts';
import { Upstream } from '../src/proxy/upstream.ts';
import { XrpcError } from '../src/xrpc/errors.ts';
import { startTestPds, type TestPds } from './harness.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

interface FakeService {
  server: Server;
  url: string;
  /** did:web naming this server (its /.well-known/did.json is served). */
  did: string;
  seen: Seen[];
  close(): Promise<void>;
}

type Responder = (req: IncomingMessage, res: ServerResponse, body: string) => void;

async function fakeService(respond: Responder, services: Record<string, string> = {}): Promise<FakeService> {
  const seen: Seen[] = [];
  let did = '';
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/.well-known/did.json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            '@context': ['https://www.w3.org/ns/did/v1'],
            id: did,
            service: Object.entries(services).map(([id, endpoint]) => ({
              id: `#${id}`,
              type: 'AtprotoService',
              serviceEndpoint: endpoint.replace('SELF', url),
            })),
          }),
        );
        return;
      }
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      respond(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  did = `did:web:127.0.0.1%3A${port}`;
  return {
    server,
    url,
    did,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answers every method with a JSON echo of what it was asked, and the headers the proxy passes back. */
const echo: Responder = (req, res, body) => {
  const json = JSON.stringify({ method: req.method, url: req.url, body });
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'content-language': 'en',
    'atproto-repo-rev': '3l000000000aa',
    'atproto-content-labelers': 'did:plc:labeler',
    'x-internal-secret': 'not for clients',
    'set-cookie': 'session=upstream',
  });
  res.end(json);
};

function jwtPayload(authorization: string | undefined): Record<string, unknown> {
  assert.ok(authorization?.startsWith('Bearer ') === true, 'expected a Bearer token');
  assert.ok(authorization);
  return JSON.parse(Buffer.from(authorization.slice(7).split('.')[1]!, 'base64url').toString('utf8'));
}

const APPVIEW_DID = 'did:web:appview.test';
const REPORT_DID = 'did:web:mod.test';

describe('forwarding to local services', () => {
  let pds: TestPds;
  let appView: FakeService;
  let report: FakeService;
  let other: FakeService;
  let down: FakeService;
  let stall: FakeService;
  let failing: FakeService;
  let did: string;
  let accessJwt: string;
  let appPassJwt: string;

  const xrpc = (nsid: string, init: RequestInit & { query?: string } = {}) =>
    fetch(`${pds.url}/xrpc/${nsid}${init.query ? `?${init.query}` : ''}`, init);
  const authed = (extra: Record<string, string> = {}) => ({ authorization: `Bearer ${accessJwt}`, ...extra });

  async function expectError(res: Response, status: number, error: string, message?: RegExp): Promise<void> {
    const body = (await res.json()) as { error: string; message: string };
    assert.equal(res.status, status, JSON.stringify(body));
    assert.equal(body.error, error, body.message);
    if (message) assert.match(body.message, message);
  }

  before(async () => {
    appView = await fakeService((req, res, body) => {
      if (req.url?.startsWith('/xrpc/com.atproto.repo.getRecord')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ uri: 'at://x', value: { did: 'did:web:feedgen.test' } }));
        return;
      }
      if (req.url?.startsWith('/xrpc/app.bsky.feed.getPostThread')) {
        res.writeHead(400, { 'content-type': 'application/json', 'atproto-repo-rev': '3l000000000ab' });
        res.end(JSON.stringify({ error: 'NotFound', message: 'Post not found: at://x' }));
        return;
      }
      echo(req, res, body);
    });
    report = await fakeService(echo);
    other = await fakeService(echo, { other_svc: 'SELF', nowhere: 'http://127.0.0.1:1', bad: 'not a url' });
    down = await fakeService(echo);
    await down.close(); // its port now refuses connections
    const downUrl = down.url;
    stall = await fakeService(
      (req, res) => {
        if (req.url?.includes('midBody')) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"partial":');
        }
        // ...and then nothing, ever
      },
      { stall_svc: 'SELF' },
    );
    failing = await fakeService(
      (req, res) => {
        if (req.url?.includes('plainText')) {
          res.writeHead(503, { 'content-type': 'text/plain' });
          res.end('overloaded');
          return;
        }
        res.writeHead(500, { 'content-type': 'application/json', 'retry-after': '7' });
        res.end(JSON.stringify({ error: 'Boom', message: 'the index is on fire' }));
      },
      { failing_svc: 'SELF', down_svc: downUrl },
    );
    pds = await startTestPds({
      env: {
        PDS_BSKY_APP_VIEW_URL: appView.url,
        PDS_BSKY_APP_VIEW_DID: APPVIEW_DID,
        PDS_REPORT_SERVICE_URL: report.url,
        PDS_REPORT_SERVICE_DID: REPORT_DID,
        PDS_MOD_SERVICE_URL: report.url,
        PDS_MOD_SERVICE_DID: REPORT_DID,
        PDS_PROXY_HEADERS_TIMEOUT: '800',
        PDS_PROXY_BODY_TIMEOUT: '800',
      },
    });
    const created = await xrpc('com.atproto.server.createAccount', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handle: 'alice.test', email: 'alice@example.com', password: 'correct horse battery' }),
    });
    assert.equal(created.status, 200);
    ({ did, accessJwt } = (await created.json()) as { did: string; accessJwt: string });
    const appPass = await xrpc('com.atproto.server.createAppPassword', {
      method: 'POST',
      headers: authed({ 'content-type': 'application/json' }),
      body: JSON.stringify({ name: 'phone' }),
    });
    const { password } = (await appPass.json()) as { password: string };
    const session = await xrpc('com.atproto.server.createSession', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ identifier: did, password }),
    });
    appPassJwt = ((await session.json()) as { accessJwt: string }).accessJwt;
  });

  after(async () => {
    await pds?.close();
    for (const s of [appView, report, other, stall, failing]) await s?.close();
  });

  it('forwards app.bsky.* to the AppView with a service JWT the account key signed', async () => {
    const res = await xrpc('app.bsky.feed.getTimeline', {
      query: 'limit=5&cursor=a%20b',
      headers: authed({
        'accept-language': 'fr, en;q=0.5',
        'atproto-accept-labelers': 'did:plc:lab',
        'x-atproto-foo': '1',
      }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-language'), 'en');
    assert.equal(res.headers.get('atproto-repo-rev'), '3l000000000aa');
    assert.equal(res.headers.get('atproto-content-labelers'), 'did:plc:labeler');
    assert.equal(res.headers.get('x-internal-secret'), null);
    assert.equal(res.headers.get('set-cookie'), null);
    assert.deepEqual(await res.json(), {
      method: 'GET',
      url: '/xrpc/app.bsky.feed.getTimeline?limit=5&cursor=a%20b',
      body: '',
    });
    const seen = appView.seen.at(-1)!;
    assert.equal(seen.headers['accept-language'], 'fr, en;q=0.5');
    assert.equal(seen.headers['atproto-accept-labelers'], 'did:plc:lab');
    assert.equal(seen.headers['x-atproto-foo'], '1');
    const payload = jwtPayload(seen.headers.authorization);
    assert.equal(payload.iss, did);
    assert.equal(payload.aud, APPVIEW_DID);
    assert.equal(payload.lxm, 'app.bsky.feed.getTimeline');
    // The signature is the account's: it verifies against the key in its DID document.
    const verified = await verifyServiceJwt(seen.headers.authorization!.slice(7), {
      serviceDid: APPVIEW_DID,
      nsid: 'app.bsky.feed.getTimeline',
      resolveSigningKey: async (d) => getAtprotoSigningKey(await pds.ctx.didResolver.resolve(d)),
    });
    assert.equal(verified.did, did);
    // A fresh token for every call.
    await (await xrpc('app.bsky.feed.getTimeline', { headers: authed() })).arrayBuffer();
    assert.notEqual(appView.seen.at(-1)!.headers.authorization, seen.headers.authorization);
  });

  it('forwards unknown non-bsky methods to the AppView too', async () => {
    const res = await xrpc('com.example.somewhere.doThing', { headers: authed() });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const seen = appView.seen.at(-1)!;
    assert.equal(seen.url, '/xrpc/com.example.somewhere.doThing');
    assert.equal(jwtPayload(seen.headers.authorization).lxm, 'com.example.somewhere.doThing');
  });

  it('forwards for signed-in callers only, as the reference', async () => {
    const calls = appView.seen.length;
    await expectError(await xrpc('app.bsky.feed.getTimeline'), 401, 'AuthMissing');
    await expectError(
      await xrpc('app.bsky.actor.getProfile', { query: 'actor=alice.test', headers: { authorization: 'Bearer nope' } }),
      400,
      'InvalidToken',
    );
    assert.equal(appView.seen.length, calls, 'nothing reached the AppView');
  });

  it('streams a procedure body through with its content headers', async () => {
    const body = JSON.stringify({ subject: 'x'.repeat(200_000) });
    const res = await xrpc('app.bsky.unspecced.doSomething', {
      method: 'POST',
      headers: authed({ 'content-type': 'application/json' }),
      body,
    });
    assert.equal(res.status, 200);
    const echoed = (await res.json()) as { method: string; body: string };
    assert.equal(echoed.method, 'POST');
    assert.equal(echoed.body, body);
    const seen = appView.seen.at(-1)!;
    assert.equal(seen.headers['content-type'], 'application/json');
    assert.equal(jwtPayload(seen.headers.authorization).lxm, 'app.bsky.unspecced.doSomething');
  });

  it('sends createReport to the report service', async () => {
    const res = await xrpc('com.atproto.moderation.createReport', {
      method: 'POST',
      headers: authed({ 'content-type': 'application/json' }),
      body: '{}',
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const payload = jwtPayload(report.seen.at(-1)!.headers.authorization);
    assert.equal(payload.aud, REPORT_DID);
    assert.equal(payload.lxm, 'com.atproto.moderation.createReport');
  });

  it('goes where atproto-proxy says, resolving the DID document', async () => {
    const res = await xrpc('chat.bsky.convo.listConvos', {
      headers: authed({ 'atproto-proxy': `${other.did}#other_svc` }),
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const seen = other.seen.at(-1)!;
    assert.equal(seen.url, '/xrpc/chat.bsky.convo.listConvos');
    assert.equal(seen.headers['atproto-proxy'], undefined);
    const payload = jwtPayload(seen.headers.authorization);
    assert.equal(payload.aud, other.did);
    assert.equal(payload.lxm, 'chat.bsky.convo.listConvos');
    // The configured AppView's own name goes straight to its URL.
    const before = appView.seen.length;
    const direct = await xrpc('app.bsky.actor.getProfile', {
      query: 'actor=alice.test',
      headers: authed({ 'atproto-proxy': `${APPVIEW_DID}#bsky_appview` }),
    });
    assert.equal(direct.status, 200);
    await direct.arrayBuffer();
    assert.equal(appView.seen.length, before + 1);
  });

  it('getFeed carries a token for the feed generator, registerPush one for the notification service', async () => {
    const feed = 'at://did:plc:abcdefghijklmnopqrstuvwx/app.bsky.feed.generator/whats-hot';
    const res = await xrpc('app.bsky.feed.getFeed', { query: `feed=${encodeURIComponent(feed)}`, headers: authed() });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const lookup = appView.seen.at(-2)!;
    assert.equal(
      lookup.url,
      '/xrpc/com.atproto.repo.getRecord?repo=did%3Aplc%3Aabcdefghijklmnopqrstuvwx&collection=app.bsky.feed.generator&rkey=whats-hot',
    );
    const payload = jwtPayload(appView.seen.at(-1)!.headers.authorization);
    assert.equal(payload.aud, 'did:web:feedgen.test');
    assert.equal(payload.lxm, 'app.bsky.feed.getFeedSkeleton');

    const push = await xrpc('app.bsky.notification.registerPush', {
      method: 'POST',
      headers: authed({ 'content-type': 'application/json' }),
      body: JSON.stringify({ serviceDid: APPVIEW_DID, token: 't', platform: 'web', appId: 'x' }),
    });
    assert.equal(push.status, 200);
    await push.arrayBuffer();
    const pushed = appView.seen.at(-1)!;
    assert.equal(pushed.url, '/xrpc/app.bsky.notification.registerPush');
    assert.equal(JSON.parse(pushed.body).token, 't');
    assert.equal(jwtPayload(pushed.headers.authorization).aud, APPVIEW_DID);
    const anonymous = await xrpc('app.bsky.notification.registerPush', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    await expectError(anonymous, 401, 'AuthMissing');
  });

  it('passes upstream XRPC errors through (a 500 as 502, as the reference does)', async () => {
    const notFound = await xrpc('app.bsky.feed.getPostThread', { query: 'uri=at://x', headers: authed() });
    assert.equal(notFound.headers.get('atproto-repo-rev'), '3l000000000ab');
    await expectError(notFound, 400, 'NotFound', /^Post not found: at:\/\/x$/);
    const boom = await xrpc('app.bsky.feed.getTimeline', {
      headers: authed({ 'atproto-proxy': `${failing.did}#failing_svc` }),
    });
    assert.equal(boom.headers.get('retry-after'), '7');
    await expectError(boom, 502, 'Boom', /^the index is on fire$/);
    const plain = await xrpc('app.bsky.feed.plainText', {
      headers: authed({ 'atproto-proxy': `${failing.did}#failing_svc` }),
    });
    await expectError(plain, 503, 'NotEnoughResources', /HTTP 503/);
  });

  it('answers bad atproto-proxy headers and unreachable services with clear errors', async () => {
    const call = (proxy: string) => xrpc('app.bsky.feed.getTimeline', { headers: authed({ 'atproto-proxy': proxy }) });
    await expectError(await call('did:web:example.com'), 400, 'InvalidRequest', /no service id/);
    await expectError(await call('#bsky_appview'), 400, 'InvalidRequest', /no did/);
    await expectError(await call('did:web:example.com#a#b'), 400, 'InvalidRequest', /format/);
    await expectError(await call('not-a-did#svc'), 400, 'InvalidRequest', /invalid DID/);
    await expectError(
      await call('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa#svc'),
      400,
      'InvalidRequest',
      /could not resolve proxy did/,
    );
    await expectError(await call(`${other.did}#no_such_service`), 400, 'InvalidRequest', /no usable #no_such_service/);
    await expectError(await call(`${other.did}#bad`), 400, 'InvalidRequest', /no usable #bad/);
    await expectError(await call(`${failing.did}#down_svc`), 502, 'UpstreamFailure', /unreachable/);
    await expectError(await call(`${other.did}#nowhere`), 502, 'UpstreamFailure', /unreachable/);
    // A did:web whose host is down cannot be resolved.
    await expectError(await call(`${down.did}#svc`), 502, 'UpstreamFailure', /could not resolve proxy did/);
  });

  it('gives up on a service that stalls, before headers and mid-body', async () => {
    const started = Date.now();
    const res = await xrpc('app.bsky.feed.getTimeline', {
      headers: authed({ 'atproto-proxy': `${stall.did}#stall_svc` }),
    });
    await expectError(res, 504, 'UpstreamTimeout', /did not answer within 800 ms/);
    assert.ok(Date.now() - started < 10_000);
    const mid = await xrpc('app.bsky.feed.midBody', { headers: authed({ 'atproto-proxy': `${stall.did}#stall_svc` }) });
    assert.equal(mid.status, 200);
    // The body is cut, never completed: the client sees the failure instead of a truncated answer.
    await assert.rejects(mid.text());
  });

  it('refuses protected methods and keeps privileged ones from app passwords', async () => {
    const before = appView.seen.length;
    // Protected methods this server serves never reach the proxy: under another case the routing
    // table does not match them, and the proxy still refuses them.
    for (const nsid of [
      'com.atproto.admin.SendEmail',
      'com.atproto.server.ConfirmEmail',
      'com.atproto.server.requestAccountDELETE',
    ]) {
      const res = await xrpc(nsid, {
        method: 'POST',
        headers: authed({ 'content-type': 'application/json' }),
        body: '{}',
      });
      await expectError(res, 400, 'InvalidToken', /never forwarded/);
    }
    // Case does not get a protected method past the list.
    await expectError(
      await xrpc('com.atproto.server.UpdateEmail', { method: 'POST', headers: authed() }),
      400,
      'InvalidToken',
    );
    assert.equal(appView.seen.length, before);

    const chat = await xrpc('chat.bsky.convo.listConvos', {
      headers: { authorization: `Bearer ${appPassJwt}`, 'atproto-proxy': `${other.did}#other_svc` },
    });
    await expectError(chat, 400, 'InvalidToken', /app password/);
    // Without a header, as the reference: tools.ozone.* to the moderation service, chat.bsky.*
    // to the AppView.
    const ozone = await xrpc('tools.ozone.moderation.queryEvents', { headers: authed() });
    assert.equal(ozone.status, 200);
    await ozone.arrayBuffer();
    assert.equal(report.seen.at(-1)!.url, '/xrpc/tools.ozone.moderation.queryEvents');
    assert.equal(jwtPayload(report.seen.at(-1)!.headers.authorization).aud, REPORT_DID);
    const chatDefault = await xrpc('chat.bsky.convo.listConvos', { headers: authed() });
    assert.equal(chatDefault.status, 200);
    await chatDefault.arrayBuffer();
    assert.equal(appView.seen.at(-1)!.url, '/xrpc/chat.bsky.convo.listConvos');
    // A bad token is refused here, not passed on.
    await expectError(
      await xrpc('app.bsky.feed.getTimeline', { headers: { authorization: 'Bearer nope' } }),
      400,
      'InvalidToken',
    );
    await expectError(await xrpc('app.bsky.feed.getTimeline', { method: 'PUT' }), 400, 'InvalidRequest');
    // An app password is fine for everything else.
    const ok = await xrpc('app.bsky.feed.getTimeline', { headers: { authorization: `Bearer ${appPassJwt}` } });
    assert.equal(ok.status, 200);
    assert.equal(jwtPayload(appView.seen.at(-1)!.headers.authorization).iss, did);
    await ok.arrayBuffer();
  });

  it('uploadBlob accepts a service JWT the account minted for this server', async () => {
    const token = async (lxm: string, aud = 'did:web:localhost') => {
      const res = await xrpc('com.atproto.server.getServiceAuth', {
        query: new URLSearchParams({ aud, lxm }).toString(),
        headers: authed(),
      });
      return ((await res.json()) as { token: string }).token;
    };
    const upload = async (jwt: string) =>
      xrpc('com.atproto.repo.uploadBlob', {
        method: 'POST',
        headers: { authorization: `Bearer ${jwt}`, 'content-type': 'text/plain' },
        body: 'a processed video, say',
      });
    const ok = await upload(await token('com.atproto.repo.uploadBlob'));
    assert.equal(ok.status, 200);
    const { blob } = (await ok.json()) as { blob: { mimeType: string; size: number } };
    assert.equal(blob.size, 'a processed video, say'.length);
    await expectError(await upload(await token('com.atproto.repo.createRecord')), 401, 'BadJwtLexiconMethod');
    await expectError(
      await upload(await token('com.atproto.repo.uploadBlob', 'did:web:elsewhere.test')),
      401,
      'BadJwtAudience',
    );
    // Only uploadBlob: elsewhere a service JWT is no session.
    const other = await xrpc('com.atproto.repo.createRecord', {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await token('com.atproto.repo.createRecord')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        repo: did,
        collection: 'app.bsky.feed.post',
        record: { text: 'x', createdAt: new Date().toISOString() },
      }),
    });
    await expectError(other, 400, 'InvalidToken');
  });

  it('still serves its own methods and forwards after all of that', async () => {
    const session = await xrpc('com.atproto.server.getSession', { headers: authed() });
    assert.equal(session.status, 200);
    await session.arrayBuffer();
    const res = await xrpc('app.bsky.feed.getTimeline', { headers: authed() });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
});

describe('forwarding without an AppView', () => {
  let pds: TestPds;
  before(async () => {
    pds = await startTestPds();
  });
  after(async () => {
    await pds?.close();
  });

  it('answers app.bsky.* with an error naming the two variables', async () => {
    const res = await fetch(`${pds.url}/xrpc/app.bsky.feed.getTimeline`);
    assert.equal(res.status, 501);
    const body = (await res.json()) as { error: string; message: string };
    assert.equal(body.error, 'MethodNotImplemented');
    assert.match(body.message, /PDS_BSKY_APP_VIEW_URL/);
    assert.match(body.message, /PDS_BSKY_APP_VIEW_DID/);
    const report = await fetch(`${pds.url}/xrpc/com.atproto.moderation.createReport`, { method: 'POST' });
    assert.match(((await report.json()) as { message: string }).message, /PDS_REPORT_SERVICE_URL/);
    const ozone = await fetch(`${pds.url}/xrpc/tools.ozone.moderation.queryEvents`);
    assert.equal(ozone.status, 501);
    assert.match(((await ozone.json()) as { message: string }).message, /PDS_MOD_SERVICE_URL/);
  });
});

describe('address policy', () => {
  const production = { allowLoopback: false };
  const development = { allowLoopback: true };

  it('refuses private, link-local, loopback and reserved addresses in production', () => {
    for (const ip of [
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '127.0.0.1',
      '0.0.0.0',
      '100.64.0.1',
      '::1',
      '::ffff:127.0.0.1',
      '::ffff:10.0.0.1',
      'fd00::1',
      'fe80::1',
      '::',
      '224.0.0.1',
    ]) {
      assert.ok(addressProblem(ip, production), ip);
    }
    for (const ip of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111'])
      assert.equal(addressProblem(ip, production), undefined, ip);
    assert.equal(addressProblem('127.0.0.1', development), undefined);
    assert.equal(addressProblem('::1', development), undefined);
    assert.ok(addressProblem('10.0.0.1', development));
  });

  it('allows https only in production, and http to loopback in development', () => {
    assert.match(urlProblem(new URL('http://example.com'), production)!, /https only/);
    assert.equal(urlProblem(new URL('https://example.com'), production), undefined);
    assert.match(urlProblem(new URL('https://localhost:3000'), production)!, /loopback/);
    assert.match(urlProblem(new URL('https://[::1]:3000'), production)!, /loopback/);
    assert.equal(urlProblem(new URL('http://127.0.0.1:3000'), development), undefined);
    assert.match(urlProblem(new URL('ftp://example.com'), development)!, /not allowed/);
  });

  it('refuses a name that resolves to a private address when connecting', async () => {
    // A public-looking name whose DNS answer is private (DNS rebinding, internal names).
    const fakeDns = ((_name: string, _opts: unknown, cb: (e: null, a: { address: string; family: number }[]) => void) =>
      cb(null, [
        { address: '93.184.216.34', family: 4 },
        { address: '10.0.0.7', family: 4 },
      ])) as unknown as typeof lookup;
    const upstream = new Upstream({
      headersTimeoutMs: 2000,
      bodyTimeoutMs: 2000,
      policy: production,
      dnsLookup: fakeDns,
    });
    try {
      await assert.rejects(
        upstream.send({ url: new URL('https://internal.example.com/xrpc/x'), method: 'GET', headers: {} }),
        (err: unknown) => err instanceof XrpcError && err.status === 400 && /may not be reached/.test(err.message),
      );
    } finally {
      upstream.close();
    }
  });

  it('refuses plain http and loopback addresses before connecting in production', async () => {
    const upstream = new Upstream({ headersTimeoutMs: 2000, bodyTimeoutMs: 2000, policy: production });
    try {
      for (const url of [
        'http://example.com/xrpc/x',
        'https://127.0.0.1:1/xrpc/x',
        'https://[::1]:1/xrpc/x',
        'https://169.254.169.254/xrpc/x',
      ]) {
        await assert.rejects(
          upstream.send({ url: new URL(url), method: 'GET', headers: {} }),
          (err: unknown) => err instanceof XrpcError && err.status === 400 && /may not be reached/.test(err.message),
          url,
        );
      }
    } finally {
      upstream.close();
    }
  });

  it('parses atproto-proxy headers as the spec writes them', () => {
    assert.deepEqual(parseProxyHeader('did:web:api.bsky.chat#bsky_chat'), {
      did: 'did:web:api.bsky.chat',
      serviceId: 'bsky_chat',
    });
    assert.throws(() => parseProxyHeader('did:web:api.bsky.chat#bsky chat'));
  });
});

describe('forwarding configuration', () => {
  it('wants a service URL and its DID together, and reads the timeouts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portage-proxy-config-'));
    try {
      const base = { PDS_DATA_DIRECTORY: dir };
      const names = (env: Record<string, string>) =>
        assert.throws(
          () => loadConfig({ ...base, ...env }),
          (err: unknown) => err instanceof ConfigError && /must be set when/.test(err.message),
        );
      names({ PDS_BSKY_APP_VIEW_URL: 'https://api.bsky.app' });
      names({ PDS_BSKY_APP_VIEW_DID: 'did:web:api.bsky.app' });
      names({ PDS_REPORT_SERVICE_URL: 'https://mod.bsky.app' });
      const config = loadConfig({
        ...base,
        PDS_BSKY_APP_VIEW_URL: 'https://api.bsky.app',
        PDS_BSKY_APP_VIEW_DID: 'did:web:api.bsky.app',
        PDS_PROXY_HEADERS_TIMEOUT: '1234',
      });
      assert.equal(config.bskyAppViewUrl, 'https://api.bsky.app');
      assert.equal(config.proxyHeadersTimeoutMs, 1234);
      assert.equal(config.proxyBodyTimeoutMs, 30_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('read-after-write', () => {
  let pds: TestPds;
  let appView: FakeService;
  let did = '';
  let accessJwt = '';
  let bobJwt = '';
  let appViewRev = '';
  let oldPost = '';
  const OTHER = 'did:plc:bbbbbbbbbbbbbbbbbbbbbbbb';
  const OLD_TIME = '2000-01-01T00:00:00.000Z';

  const call = async (nsid: string, params: Record<string, string>, token = accessJwt) => {
    const res = await fetch(`${pds.url}/xrpc/${nsid}?${new URLSearchParams(params)}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200, await res.clone().text());
    return { body: (await res.json()) as Record<string, any>, lag: res.headers.get('atproto-upstream-lag') }; // eslint-disable-line @typescript-eslint/no-explicit-any
  };
  const write = async (nsid: string, input: unknown) => {
    const res = await fetch(`${pds.url}/xrpc/${nsid}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessJwt}`, 'content-type': 'application/json' },
      body: JSON.stringify(input),
    });
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as { uri: string; cid: string };
  };
  const post = (text: string, extra: Record<string, unknown> = {}) =>
    write('com.atproto.repo.createRecord', {
      repo: did,
      collection: 'app.bsky.feed.post',
      record: { $type: 'app.bsky.feed.post', text, createdAt: new Date().toISOString(), ...extra },
    });

  before(async () => {
    appView = await fakeService((req, res) => {
      const url = new URL(req.url!, 'http://x');
      const nsid = url.pathname.slice('/xrpc/'.length);
      const author = { did, handle: 'alice.test', displayName: 'Old name' };
      const answers: Record<string, unknown> = {
        'app.bsky.actor.getProfile': { ...author, followersCount: 3 },
        'app.bsky.actor.getProfiles': {
          profiles: [{ ...author }, { did: OTHER, handle: 'bob.test', displayName: 'Bob' }],
        },
        'app.bsky.feed.getTimeline': {
          feed: [{ post: { uri: `at://${OTHER}/app.bsky.feed.post/1`, indexedAt: OLD_TIME, author: { did: OTHER } } }],
          cursor: 'next',
        },
        'app.bsky.feed.getAuthorFeed': { feed: [{ post: { uri: oldPost, indexedAt: OLD_TIME, author } }] },
        'app.bsky.feed.getActorLikes': { feed: [{ post: { uri: oldPost, indexedAt: OLD_TIME, author } }] },
      };
      let answer = answers[nsid];
      if (nsid === 'app.bsky.feed.getPostThread') {
        answer =
          url.searchParams.get('uri') === oldPost
            ? {
                thread: {
                  $type: 'app.bsky.feed.defs#threadViewPost',
                  post: { uri: oldPost, author, record: { text: 'old' } },
                  replies: [],
                },
              }
            : undefined;
      }
      if (!answer) {
        res.writeHead(400, { 'content-type': 'application/json', 'atproto-repo-rev': appViewRev });
        res.end(JSON.stringify({ error: 'NotFound', message: 'Post not found' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'atproto-repo-rev': appViewRev });
      res.end(JSON.stringify(answer));
    });
    pds = await startTestPds({ env: { PDS_BSKY_APP_VIEW_URL: appView.url, PDS_BSKY_APP_VIEW_DID: APPVIEW_DID } });
    const createAccount = async (name: string) => {
      const created = await fetch(`${pds.url}/xrpc/com.atproto.server.createAccount`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          handle: `${name}.test`,
          email: `${name}@example.com`,
          password: 'correct horse battery',
        }),
      });
      return (await created.json()) as { did: string; accessJwt: string };
    };
    ({ did, accessJwt } = await createAccount('alice'));
    bobJwt = (await createAccount('bob')).accessJwt;
    oldPost = (await post('old')).uri;
    // The AppView has indexed up to here...
    appViewRev = pds.ctx.actorStore.getRoot(did)!.rev;
  });

  after(async () => {
    await pds?.close();
    await appView?.close();
  });

  it('answers from the AppView untouched while it is up to date', async () => {
    const { body, lag } = await call('app.bsky.actor.getProfile', { actor: did });
    assert.equal(body.displayName, 'Old name');
    assert.equal(lag, null);
  });

  it("merges the caller's newer profile and posts when the AppView is behind", async () => {
    // ...and these it has not seen yet.
    const upload = await fetch(`${pds.url}/xrpc/com.atproto.repo.uploadBlob`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessJwt}`, 'content-type': 'image/png' },
      body: Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'),
    });
    const { blob } = (await upload.json()) as { blob: { ref: { $link: string } } };
    await write('com.atproto.repo.putRecord', {
      repo: did,
      collection: 'app.bsky.actor.profile',
      rkey: 'self',
      record: { $type: 'app.bsky.actor.profile', displayName: 'New name', description: 'hello', avatar: blob },
    });
    const oldRef = {
      uri: oldPost,
      cid: pds.ctx.actorStore.getRecord(did, 'app.bsky.feed.post', oldPost.split('/').pop()!)!.cid,
    };
    const reply = await post('a reply', { reply: { root: oldRef, parent: oldRef } });
    const fresh = await post('fresh', {
      embed: { $type: 'app.bsky.embed.images', images: [{ image: blob, alt: 'pic' }] },
    });

    const profile = await call('app.bsky.actor.getProfile', { actor: did });
    assert.equal(profile.body.displayName, 'New name');
    assert.equal(profile.body.description, 'hello');
    assert.equal(profile.body.followersCount, 3);
    assert.match(profile.body.avatar, new RegExp(`/xrpc/com.atproto.sync.getBlob\\?did=.*&cid=${blob.ref.$link}$`));
    assert.ok(Number(profile.lag) >= 0);

    const profiles = await call('app.bsky.actor.getProfiles', { actors: did });
    assert.deepEqual(
      profiles.body.profiles.map((p: { displayName: string }) => p.displayName),
      ['New name', 'Bob'],
    );

    const timeline = await call('app.bsky.feed.getTimeline', {});
    assert.deepEqual(
      timeline.body.feed.map((f: { post: { uri: string } }) => f.post.uri),
      [fresh.uri, reply.uri, `at://${OTHER}/app.bsky.feed.post/1`],
    );
    assert.equal(timeline.body.cursor, 'next');
    const mine = timeline.body.feed[0].post;
    assert.equal(mine.author.displayName, 'New name');
    assert.equal(mine.author.handle, 'alice.test');
    assert.equal(mine.embed.images[0].alt, 'pic');
    assert.equal(mine.likeCount, 0);

    const authorFeed = await call('app.bsky.feed.getAuthorFeed', { actor: did });
    assert.equal(authorFeed.body.feed.length, 3);
    assert.equal(authorFeed.body.feed[2].post.author.displayName, 'New name');

    const likes = await call('app.bsky.feed.getActorLikes', { actor: did });
    assert.equal(likes.body.feed[0].post.author.displayName, 'New name');

    const thread = await call('app.bsky.feed.getPostThread', { uri: oldPost });
    assert.deepEqual(
      thread.body.thread.replies.map((r: { post: { uri: string } }) => r.post.uri),
      [reply.uri],
    );
    // A post the AppView has not seen at all is built from the local record.
    const own = await call('app.bsky.feed.getPostThread', { uri: fresh.uri });
    assert.equal(own.body.thread.post.uri, fresh.uri);
    assert.equal(own.body.thread.post.record.text, 'fresh');

    // Someone else's view is the AppView's.
    const bobsView = await call('app.bsky.actor.getProfile', { actor: did }, bobJwt);
    assert.equal(bobsView.body.displayName, 'Old name');
    const missing = await fetch(
      `${pds.url}/xrpc/app.bsky.feed.getPostThread?uri=${encodeURIComponent(`at://${OTHER}/app.bsky.feed.post/2`)}`,
      {
        headers: { authorization: `Bearer ${accessJwt}` },
      },
    );
    assert.equal(missing.status, 400);
    assert.equal(((await missing.json()) as { error: string }).error, 'NotFound');
  });
});
