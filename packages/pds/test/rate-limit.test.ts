/**
 * Rate limits (PDS_RATE_LIMITS_ENABLED): with small limits configured, the request past a
 * limit gets 429 RateLimitExceeded with the RateLimit-* headers and changes nothing; with the
 * variable unset the same traffic is never limited and carries no RateLimit headers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RateLimitPolicies } from '../src/rate-limit/rate-limiter.ts';
import { startTestPds, type TestPds } from './harness.ts';

const SMALL_LIMITS: Partial<RateLimitPolicies> = {
  global: [{ points: 25, windowMs: 60_000 }],
  createSession: [
    { points: 3, windowMs: 60_000 },
    { points: 100, windowMs: 24 * 60 * 60_000 },
  ],
  repoWrite: [{ points: 10, windowMs: 60 * 60_000 }],
};

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function xrpc(
  server: TestPds,
  nsid: string,
  opts: { body?: unknown; token?: string; forwardedFor?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.forwardedFor) headers['x-forwarded-for'] = opts.forwardedFor;
  const res = await fetch(`${server.url}/xrpc/${nsid}`, {
    method: opts.body === undefined ? 'GET' : 'POST',
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
}

function assertRefused(answer: Answer, limit: number, windowSeconds: number): void {
  assert.equal(answer.status, 429);
  assert.deepEqual(answer.body, { error: 'RateLimitExceeded', message: 'Rate Limit Exceeded' });
  assert.equal(answer.headers.get('ratelimit-limit'), String(limit));
  assert.equal(answer.headers.get('ratelimit-remaining'), '0');
  assert.equal(answer.headers.get('ratelimit-policy'), `${limit};w=${windowSeconds}`);
  const reset = Number(answer.headers.get('ratelimit-reset'));
  const nowSeconds = Date.now() / 1000;
  assert.ok(reset >= Math.floor(nowSeconds) && reset <= nowSeconds + windowSeconds, `reset ${reset} is in the window`);
  assert.match(answer.headers.get('retry-after') ?? '', /^\d+$/, 'Retry-After is set');
}

async function signUp(server: TestPds, handle: string, forwardedFor: string): Promise<{ did: string; token: string }> {
  const created = await xrpc(server, 'com.atproto.server.createAccount', {
    body: { handle, email: `${handle}@example.com`, password: 'rate-limit-pw' },
    forwardedFor,
  });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  return { did: String(created.body.did), token: String(created.body.accessJwt) };
}

describe('rate limits on (PDS_RATE_LIMITS_ENABLED=true)', () => {
  let server: TestPds;
  before(async () => {
    server = await startTestPds({ env: { PDS_RATE_LIMITS_ENABLED: 'true' }, rateLimits: SMALL_LIMITS });
  });
  after(() => server.close());

  it('refuses the call past the global per-IP limit, counting each client address apart', async () => {
    const client = '203.0.113.10';
    for (let i = 1; i <= 25; i++) {
      const ok = await xrpc(server, 'com.atproto.server.describeServer', { forwardedFor: client });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('ratelimit-limit'), '25');
      assert.equal(ok.headers.get('ratelimit-remaining'), String(25 - i));
      assert.equal(ok.headers.get('ratelimit-policy'), '25;w=60');
    }
    assertRefused(await xrpc(server, 'com.atproto.server.describeServer', { forwardedFor: client }), 25, 60);
    // Another client behind the same proxy has its own budget.
    const other = await xrpc(server, 'com.atproto.server.describeServer', { forwardedFor: '203.0.113.11' });
    assert.equal(other.status, 200);
    assert.equal(other.headers.get('ratelimit-remaining'), '24');
  });

  it('refuses the createSession past its limit for one identifier and IP, not for another identifier', async () => {
    const client = '203.0.113.20';
    await signUp(server, 'carol.test', client);
    await signUp(server, 'dave.test', client);
    for (let i = 1; i <= 3; i++) {
      const ok = await xrpc(server, 'com.atproto.server.createSession', {
        body: { identifier: 'carol.test', password: 'rate-limit-pw' },
        forwardedFor: client,
      });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('ratelimit-remaining'), String(3 - i), 'the tightest limit is reported');
    }
    assertRefused(
      await xrpc(server, 'com.atproto.server.createSession', {
        body: { identifier: 'carol.test', password: 'rate-limit-pw' },
        forwardedFor: client,
      }),
      3,
      60,
    );
    const other = await xrpc(server, 'com.atproto.server.createSession', {
      body: { identifier: 'dave.test', password: 'rate-limit-pw' },
      forwardedFor: client,
    });
    assert.equal(other.status, 200);
  });

  it('counts repository writes in points per account and refuses the write past the limit, writing nothing', async () => {
    const { did, token } = await signUp(server, 'erin.test', '203.0.113.30');
    const post = (i: number) => ({
      repo: did,
      collection: 'app.bsky.feed.post',
      record: { $type: 'app.bsky.feed.post', text: `post ${i}`, createdAt: new Date().toISOString() },
    });
    const rkeys: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const ok = await xrpc(server, 'com.atproto.repo.createRecord', {
        body: post(i),
        token,
        forwardedFor: '203.0.113.30',
      });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('ratelimit-remaining'), String(10 - 3 * i), 'a create costs 3 points');
      rkeys.push(String(ok.body.uri).split('/').at(-1)!);
    }
    const deleted = await xrpc(server, 'com.atproto.repo.deleteRecord', {
      body: { repo: did, collection: 'app.bsky.feed.post', rkey: rkeys[0] },
      token,
      forwardedFor: '203.0.113.30',
    });
    assert.equal(deleted.status, 200);
    assert.equal(deleted.headers.get('ratelimit-remaining'), '0', 'a delete costs 1 point');
    assertRefused(
      await xrpc(server, 'com.atproto.repo.createRecord', { body: post(4), token, forwardedFor: '203.0.113.30' }),
      10,
      3600,
    );
    const listed = await xrpc(
      server,
      `com.atproto.repo.listRecords?repo=${encodeURIComponent(did)}&collection=app.bsky.feed.post`,
      { forwardedFor: '203.0.113.31' },
    );
    assert.equal((listed.body.records as unknown[]).length, 2, 'the refused write wrote nothing');
  });
});

describe("rate limits on by default for a public name, with the reference's limits", () => {
  let server: TestPds;
  before(async () => {
    server = await startTestPds({ env: { PDS_HOSTNAME: 'pds.example.com' } });
  });
  after(() => server.close());

  it('refuses wrong passwords past 30 in five minutes with 429, not 401', async () => {
    await signUp(server, 'gina.test', '203.0.113.50');
    const statuses: number[] = [];
    for (let i = 0; i < 31; i++) {
      const answer = await xrpc(server, 'com.atproto.server.createSession', {
        body: { identifier: 'gina.test', password: 'not-the-password' },
        forwardedFor: '203.0.113.50',
      });
      statuses.push(answer.status);
    }
    assert.deepEqual(statuses, [...Array(30).fill(401), 429]);
  });

  it('refuses handle changes past 10 in five minutes for one account', async () => {
    const { token } = await signUp(server, 'hal.test', '203.0.113.52');
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const answer = await xrpc(server, 'com.atproto.identity.updateHandle', {
        body: { handle: `hal${i}.test` },
        token,
        forwardedFor: '203.0.113.52',
      });
      statuses.push(answer.status);
    }
    assert.deepEqual(statuses, [...Array(10).fill(200), 429]);
  });

  it('refuses password-reset mails past 15 an hour from one address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 16; i++) {
      const answer = await xrpc(server, 'com.atproto.server.requestPasswordReset', {
        body: { email: 'nobody@example.com' },
        forwardedFor: '203.0.113.51',
      });
      statuses.push(answer.status);
    }
    assert.deepEqual(statuses, [...Array(15).fill(400), 429]);
  });
});

describe('rate limits off (the default on localhost)', () => {
  let server: TestPds;
  before(async () => {
    server = await startTestPds({ rateLimits: SMALL_LIMITS });
  });
  after(() => server.close());

  it('limits nothing and sends no RateLimit headers, whatever limits are configured', async () => {
    assert.equal(server.ctx.rateLimiter, undefined);
    for (let i = 0; i < 30; i++) {
      const ok = await xrpc(server, 'com.atproto.server.describeServer', { forwardedFor: '203.0.113.40' });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('ratelimit-limit'), null);
    }
    await signUp(server, 'frank.test', '203.0.113.40');
    for (let i = 0; i < 5; i++) {
      const ok = await xrpc(server, 'com.atproto.server.createSession', {
        body: { identifier: 'frank.test', password: 'rate-limit-pw' },
        forwardedFor: '203.0.113.40',
      });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('ratelimit-remaining'), null);
    }
  });
});
