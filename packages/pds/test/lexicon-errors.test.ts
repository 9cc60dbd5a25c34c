/**
 * Bad params and input are refused with the reference's error: each request goes to Portage
 * and to the reference PDS (@atproto/dev-env, a test peer only), and both answers must be the
 * same 400 InvalidRequest with the same message naming the field. Lexicon checks come from the
 * method declarations (xrpc/handler.ts), so these stand for every method.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestPds as ReferencePds, TestPlc } from '@atproto/dev-env';
import { startReferencePds, startReferencePlc } from '../../../test/support/reference-peers.ts';
import { startTestPds, type TestPds } from './harness.ts';

interface Answer {
  status: number;
  body: { error?: string; message?: string };
}

interface Server {
  url: string;
  accessJwt: string;
  did: string;
}

async function answer(res: Response): Promise<Answer> {
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

async function signUp(url: string, handle: string): Promise<Server> {
  const res = await fetch(`${url}/xrpc/com.atproto.server.createAccount`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ handle, email: `${handle}@example.com`, password: 'lexicon-errors-pass' }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const { accessJwt, did } = (await res.json()) as { accessJwt: string; did: string };
  return { url, accessJwt, did };
}

describe('lexicon errors, compared with the reference PDS', () => {
  let dir: string;
  let plc: TestPlc;
  let reference: ReferencePds;
  let portage: TestPds;
  let servers: Server[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portage-lexicon-errors-'));
    plc = await startReferencePlc(dir);
    reference = await startReferencePds(dir, plc.url);
    portage = await startTestPds({ plcUrl: plc.url });
    servers = [await signUp(portage.url, 'alice.test'), await signUp(reference.url, 'bob.test')];
  });

  after(async () => {
    await portage?.close();
    await reference?.close().catch(() => {});
    await plc?.close().catch(() => {});
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The answers of Portage and the reference to the same request (`did` is each server's account). */
  async function both(request: (server: Server) => Promise<Response>): Promise<[Answer, Answer]> {
    const [ours, theirs] = await Promise.all(servers.map(async (server) => answer(await request(server))));
    return [ours!, theirs!];
  }

  const post = (server: Server, nsid: string, body: unknown) =>
    fetch(`${server.url}/xrpc/${nsid}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${server.accessJwt}` },
      body: JSON.stringify(body),
    });

  it('a param of the wrong type', async () => {
    const [ours, theirs] = await both((s) => fetch(`${s.url}/xrpc/com.atproto.sync.listRepos?limit=ten`));
    assert.deepEqual(ours, theirs);
    assert.deepEqual(ours, {
      status: 400,
      body: {
        error: 'InvalidRequest',
        message: 'Invalid com.atproto.sync.listRepos params: Expected integer value type (got "ten")',
      },
    });
    const [overLimit, referenceOverLimit] = await both((s) =>
      fetch(`${s.url}/xrpc/com.atproto.repo.listRecords?repo=${s.did}&collection=app.bsky.feed.post&limit=101`),
    );
    assert.deepEqual(overLimit, referenceOverLimit);
    assert.equal(overLimit.status, 400);
  });

  it('a body field of the wrong type', async () => {
    const [ours, theirs] = await both((s) =>
      post(s, 'com.atproto.repo.createRecord', { repo: 5, collection: 'app.bsky.feed.post', record: {} }),
    );
    assert.deepEqual(ours, theirs);
    assert.deepEqual(ours.body, { error: 'InvalidRequest', message: 'Expected string value type (got 5) at $.repo' });
  });

  it('a missing required field', async () => {
    const [ours, theirs] = await both((s) => post(s, 'com.atproto.repo.createRecord', { repo: s.did, record: {} }));
    assert.deepEqual(ours, theirs);
    assert.deepEqual(ours, {
      status: 400,
      body: { error: 'InvalidRequest', message: 'Missing required key "collection" at $' },
    });
    const [noParam, referenceNoParam] = await both((s) => fetch(`${s.url}/xrpc/com.atproto.sync.getRepoStatus`));
    assert.deepEqual(noParam, referenceNoParam);
    assert.equal(noParam.body.message, 'Invalid com.atproto.sync.getRepoStatus params: Missing required key "did"');
  });

  it('a value outside a closed set (applyWrites takes only create, update and delete)', async () => {
    const write = {
      $type: 'com.atproto.repo.applyWrites#upsert',
      collection: 'app.bsky.feed.post',
      rkey: 'x',
      value: {},
    };
    const [ours, theirs] = await both((s) => post(s, 'com.atproto.repo.applyWrites', { repo: s.did, writes: [write] }));
    assert.equal(ours.status, theirs.status);
    assert.equal(ours.body.error, theirs.body.error);
    // The same words, field, value and allowed set; only the order the set is listed in may differ
    // (the reference lists the lexicon's order, @atcute's schema sorts its members).
    assert.equal(sortedChoices(ours.body.message!), sortedChoices(theirs.body.message!));
    assert.match(
      ours.body.message!,
      /^Expected one of .* \(got "com\.atproto\.repo\.applyWrites#upsert"\) at \$\.writes\[0\]\.\$type$/,
    );
    const [noType, referenceNoType] = await both((s) =>
      post(s, 'com.atproto.repo.applyWrites', {
        repo: s.did,
        writes: [{ collection: 'app.bsky.feed.post', rkey: 'x' }],
      }),
    );
    assert.deepEqual(noType, referenceNoType);
  });

  it('a string that is not in its format', async () => {
    const [ours, theirs] = await both((s) =>
      fetch(`${s.url}/xrpc/com.atproto.repo.getRecord?repo=${s.did}&collection=nope&rkey=x`),
    );
    assert.deepEqual(ours, theirs);
    assert.equal(ours.body.message, 'Invalid com.atproto.repo.getRecord params: Invalid NSID (got "nope")');
  });

  it('the same words for every kind of check', async () => {
    const query = (path: string) => (s: Server) => fetch(`${s.url}/xrpc/${path.replaceAll('$did', s.did)}`);
    const body = (nsid: string, input: Record<string, unknown>) => (s: Server) =>
      post(s, nsid, JSON.parse(JSON.stringify(input).replaceAll('$did', s.did)));
    const cases: [string, (s: Server) => Promise<Response>][] = [
      ['integer over its maximum', query('com.atproto.sync.listRepos?limit=5000')],
      ['integer under its minimum', query('com.atproto.sync.listRepos?limit=0')],
      ['boolean param', query('com.atproto.repo.listRecords?repo=$did&collection=app.bsky.feed.post&reverse=maybe')],
      ['repeated single param', query('com.atproto.sync.getRepoStatus?did=$did&did=$did')],
      ['DID param', query('com.atproto.sync.getRepoStatus?did=notadid')],
      ['AT identifier param', query('com.atproto.repo.describeRepo?repo=!!')],
      [
        'record key too long',
        body('com.atproto.repo.createRecord', {
          repo: '$did',
          collection: 'app.bsky.feed.post',
          rkey: 'x'.repeat(600),
          record: {},
        }),
      ],
      [
        'record key syntax',
        body('com.atproto.repo.putRecord', { repo: '$did', collection: 'app.bsky.feed.post', rkey: 'a/b', record: {} }),
      ],
      [
        'CID syntax',
        body('com.atproto.repo.deleteRecord', {
          repo: '$did',
          collection: 'app.bsky.feed.post',
          rkey: 'x',
          swapCommit: 'nope',
        }),
      ],
      [
        'null for an optional string',
        body('com.atproto.repo.createRecord', {
          repo: '$did',
          collection: 'app.bsky.feed.post',
          record: {},
          swapCommit: null,
        }),
      ],
      [
        'record not an object',
        body('com.atproto.repo.createRecord', { repo: '$did', collection: 'app.bsky.feed.post', record: 'text' }),
      ],
      ['body not an object', body('com.atproto.server.createSession', [1, 2, 3] as never)],
      ['array expected', body('app.bsky.actor.putPreferences', { preferences: { a: 1, b: 2, c: 3 } })],
      [
        'nested union member field',
        body('app.bsky.actor.putPreferences', {
          preferences: [{ $type: 'app.bsky.actor.defs#adultContentPref', enabled: 'yes' }],
        }),
      ],
      ['datetime syntax', body('com.atproto.server.deactivateAccount', { deleteAfter: 'tomorrow' })],
    ];
    for (const [name, request] of cases) {
      const [ours, theirs] = await both(request);
      // Each server names its own account where a message quotes the DID sent.
      const [mine, reference] = servers.map((server) => server.did);
      assert.equal(
        JSON.stringify(ours).replaceAll(mine!, '$did'),
        JSON.stringify(theirs).replaceAll(reference!, '$did'),
        name,
      );
    }
  });
});

/** A message with its `one of "a", "b" or "c"` list in sorted order. */
function sortedChoices(message: string): string {
  return message.replace(/one of (.*) \(got/, (_, list: string) => {
    const choices = list.split(/, | or /).sort();
    return `one of ${choices.join(', ')} (got`;
  });
}
