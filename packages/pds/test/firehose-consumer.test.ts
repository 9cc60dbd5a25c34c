/**
 * Our firehose consumed by the official consumer (@atproto/sync's Firehose, verification on)
 * while the official client (@atproto/api) writes through our PDS; every #commit is also
 * checked the way a relay does (sync v1.1): inverting its ops on the partial tree from its
 * blocks, with the reference MST, must give back prevData.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decode as decodeCbor, fromBytes } from '@atcute/cbor';
import { AtpAgent } from '@atproto/api';
import { IdResolver } from '@atproto/identity';
import { parseCid } from '@atproto/lex-data';
import { MemoryBlockstore, MST, readCarWithRoot } from '@atproto/repo';
import { type Event, Firehose as ConsumerFirehose } from '@atproto/sync';
import WebSocket from 'ws';
import { decodeFrame } from '../src/sequencer/frames.ts';
import { startTestPds, type TestPds } from './harness.ts';

interface RawCommit {
  seq: number;
  blocks: Uint8Array;
  prevData?: string;
  ops: Array<{ action: string; path: string; cid: string | null; prev?: string }>;
}

/** The relay's check: the ops, inverted on the tree carried by the event, give prevData. */
async function assertInductiveProof(commit: RawCommit): Promise<void> {
  const car = await readCarWithRoot(commit.blocks);
  const commitObj = decodeCbor(car.blocks.get(car.root)!) as { data: { $link: string } };
  let tree = MST.load(new MemoryBlockstore(car.blocks), parseCid(commitObj.data.$link));
  for (const op of commit.ops) {
    const current = await tree.get(op.path);
    assert.equal(current?.toString() ?? null, op.cid, `seq ${commit.seq}: ${op.path} has the CID the op claims`);
    if (op.action === 'create') tree = await tree.delete(op.path);
    else if (op.action === 'update') tree = await tree.update(op.path, parseCid(op.prev!));
    else tree = await tree.add(op.path, parseCid(op.prev!));
  }
  assert.equal((await tree.getPointer()).toString(), commit.prevData, `seq ${commit.seq}: inverted root is prevData`);
}

const consumers: ConsumerFirehose[] = [];

function consume(service: string, idResolver: IdResolver, cursor: number | undefined) {
  const events: Event[] = [];
  const errors: Error[] = [];
  const firehose = new ConsumerFirehose({
    service,
    idResolver,
    // Handle verification would resolve `*.test` through DNS and HTTPS: not on loopback.
    unauthenticatedHandles: true,
    getCursor: () => (events.length ? events.at(-1)!.seq : cursor),
    handleEvent: (evt) => {
      events.push(evt);
    },
    onError: (err) => errors.push(err),
  });
  void firehose.start();
  consumers.push(firehose);
  return { firehose, events, errors };
}

async function waitFor(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !pred(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(pred(), `timed out waiting for ${what}`);
}

describe('the official consumer verifies our firehose', () => {
  let pds: TestPds;
  let wsBase: string;
  const raw: RawCommit[] = [];
  let rawSocket: WebSocket;

  before(async () => {
    pds = await startTestPds();
    wsBase = pds.url.replace('http://', 'ws://');
    // A raw subscriber keeps the frames for the inductive-proof check.
    rawSocket = new WebSocket(`${wsBase}/xrpc/com.atproto.sync.subscribeRepos?cursor=0`);
    rawSocket.on('message', (data: Buffer) => {
      const frame = decodeFrame(new Uint8Array(data));
      if (frame.t !== '#commit') return;
      const body = frame.body as {
        seq: number;
        blocks: { $bytes: string };
        prevData?: { $link: string };
        ops: Array<{ action: string; path: string; cid: { $link: string } | null; prev?: { $link: string } }>;
      };
      raw.push({
        seq: body.seq,
        blocks: fromBytes(body.blocks),
        prevData: body.prevData?.$link,
        ops: body.ops.map((op) => ({
          action: op.action,
          path: op.path,
          cid: op.cid?.$link ?? null,
          prev: op.prev?.$link,
        })),
      });
    });
    await new Promise((resolve) => rawSocket.once('open', resolve));
  });

  after(async () => {
    await Promise.all(consumers.map((c) => c.destroy()));
    rawSocket?.terminate();
    await pds?.close();
  });

  test('creates, updates, deletes, applyWrites of 200, handle change, deactivate, import, activate; reconnect mid-stream', async () => {
    const idResolver = new IdResolver({ plcUrl: pds.plcUrl, fetch: globalThis.fetch });
    const live = consume(wsBase, idResolver, 0);

    const agent = new AtpAgent({ service: pds.url });
    await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'correct horse battery' });
    const did = agent.session!.did;
    const post = (text: string) => ({ $type: 'app.bsky.feed.post', text, createdAt: new Date().toISOString() });

    const created: Array<{ uri: string; cid: string }> = [];
    for (let i = 0; i < 3; i++) {
      const { data } = await agent.com.atproto.repo.createRecord({
        repo: did,
        collection: 'app.bsky.feed.post',
        record: post(`post ${i}`),
      });
      created.push(data);
    }
    const rkey0 = created[0]!.uri.split('/').pop()!;
    const rkey1 = created[1]!.uri.split('/').pop()!;
    await agent.com.atproto.repo.putRecord({
      repo: did,
      collection: 'app.bsky.feed.post',
      rkey: rkey0,
      record: post('post 0, edited'),
    });
    await agent.com.atproto.repo.deleteRecord({ repo: did, collection: 'app.bsky.feed.post', rkey: rkey1 });
    await agent.com.atproto.repo.applyWrites({
      repo: did,
      writes: Array.from({ length: 200 }, () => ({
        $type: 'com.atproto.repo.applyWrites#create' as const,
        collection: 'app.bsky.feed.like',
        value: {
          $type: 'app.bsky.feed.like',
          subject: { uri: created[2]!.uri, cid: created[2]!.cid },
          createdAt: new Date().toISOString(),
        },
      })),
    });
    const { data: likes } = await agent.com.atproto.repo.listRecords({
      repo: did,
      collection: 'app.bsky.feed.like',
      limit: 1,
    });
    const firstLikeRkey = likes.records[0]!.uri.split('/').pop()!;
    const mid = pds.ctx.sequencer.lastSeq();
    // A batch mixing all three actions in one commit.
    await agent.com.atproto.repo.applyWrites({
      repo: did,
      writes: [
        { $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.post', value: post('batch') },
        {
          $type: 'com.atproto.repo.applyWrites#update',
          collection: 'app.bsky.feed.post',
          rkey: rkey0,
          value: post('post 0, edited twice'),
        },
        { $type: 'com.atproto.repo.applyWrites#delete', collection: 'app.bsky.feed.like', rkey: firstLikeRkey },
      ],
    });

    // Identity and hosting status, through the endpoints.
    await agent.com.atproto.identity.updateHandle({ handle: 'alice2.test' });
    // An import (of the account's own repository) while deactivated, then activation, which
    // re-signs the head commit under a new rev and announces it with #sync.
    const { data: car } = await agent.com.atproto.sync.getRepo({ did });
    await agent.com.atproto.server.deactivateAccount({});
    await agent.com.atproto.repo.importRepo(car, { encoding: 'application/vnd.ipld.car' });
    await agent.com.atproto.server.activateAccount();
    const { data: latest } = await agent.com.atproto.sync.getLatestCommit({ did });
    // A write after the import: its #commit must chain from the re-signed head.
    await agent.com.atproto.repo.createRecord({ repo: did, collection: 'app.bsky.feed.post', record: post('after') });
    const last = pds.ctx.sequencer.lastSeq();

    await waitFor(() => live.events.some((e) => e.seq === last), 'the consumer to reach the last event');
    assert.deepEqual(live.errors, [], 'the consumer reported no invalid event');
    const kinds = (kind: string) => live.events.filter((e) => e.event === kind);
    assert.equal(kinds('create').length, 3 + 200 + 1 + 1);
    assert.equal(kinds('update').length, 2);
    assert.equal(kinds('delete').length, 2);
    // Handles are not verified here (see consume()); the consumer resolved the DID document.
    const identities = kinds('identity') as Array<{ did: string; didDocument?: { alsoKnownAs?: string[] } }>;
    // createAccount, updateHandle, activateAccount.
    assert.equal(identities.length, 3);
    assert.ok(identities.every((e) => e.did === did));
    assert.deepEqual(identities[1]!.didDocument?.alsoKnownAs, ['at://alice2.test']);
    assert.deepEqual(
      kinds('account').map((e) => [(e as { active: boolean }).active, (e as { status?: string }).status]),
      [
        [true, undefined],
        [false, 'deactivated'],
        [true, undefined],
      ],
    );
    const syncs = kinds('sync') as Array<{ cid: { toString(): string }; rev: string }>;
    assert.equal(syncs.at(-1)!.cid.toString(), latest.cid, '#sync names the re-signed head');
    assert.equal(syncs.at(-1)!.rev, latest.rev);

    // Every #commit (the account's first one included) passes the inductive proof.
    await waitFor(() => raw.some((c) => c.seq === last), 'the raw subscriber');
    assert.equal(raw.length, 1 + 3 + 1 + 1 + 1 + 1 + 1);
    assert.equal(raw.at(-1)!.prevData !== undefined, true);
    for (const commit of raw.filter((c) => c.prevData)) await assertInductiveProof(commit);

    // Reconnecting with a cursor in the middle gets every later event exactly once.
    const resumed = consume(wsBase, idResolver, mid);
    await waitFor(() => resumed.events.some((e) => e.seq === last), 'the resumed consumer');
    const key = (e: Event) => `${e.seq} ${e.event} ${'uri' in e ? e.uri.toString() : ''}`;
    assert.deepEqual(resumed.events.map(key), live.events.filter((e) => e.seq > mid).map(key));
    assert.equal(new Set(resumed.events.map(key)).size, resumed.events.length, 'no duplicate');
    assert.deepEqual(resumed.errors, []);
  });
});
