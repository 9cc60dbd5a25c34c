import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { WebSocket } from 'ws';
import { decodeFrame } from '../src/sequencer/frames.ts';
import { startTestPds, type TestPds } from './harness.ts';

describe('the server wires the firehose', () => {
  let pds: TestPds;
  let socket: WebSocket;
  const frames: { t: string; body: Record<string, unknown> }[] = [];
  before(async () => {
    pds = await startTestPds();
    socket = new WebSocket(`${pds.url.replace('http', 'ws')}/xrpc/com.atproto.sync.subscribeRepos?cursor=0`);
    socket.on('message', (data: Buffer) => {
      const frame = decodeFrame(new Uint8Array(data));
      frames.push({ t: String(frame.t), body: frame.body as Record<string, unknown> });
    });
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  });
  after(async () => {
    socket.terminate();
    await pds.close();
  });

  const until = async (pred: () => boolean) => {
    for (let i = 0; i < 500 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(pred(), `frames so far: ${frames.map((f) => f.t).join(', ')}`);
  };

  it('announces a new account (#commit, #identity, #account) and a handle change (#identity)', async () => {
    const agent = new AtpAgent({ service: pds.url });
    const { data } = await agent.createAccount({ handle: 'alice.test', email: 'a@example.com', password: 'pw-test' });
    await until(() => frames.some((f) => f.t === '#account'));
    const mine = frames.filter((f) => f.body.did === data.did || f.body.repo === data.did);
    assert.deepEqual(
      mine.map((f) => f.t),
      ['#commit', '#identity', '#account'],
    );
    assert.equal(mine[1]!.body.handle, 'alice.test');
    assert.equal(mine[2]!.body.active, true);
    await agent.com.atproto.identity.updateHandle({ handle: 'alice2.test' });
    await until(() => frames.filter((f) => f.t === '#identity').length === 2);
    assert.equal(frames.at(-1)!.body.handle, 'alice2.test');
    const seqs = frames.map((f) => f.body.seq as number);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'in sequence order',
    );
  });

  it('closes subscribers when the server stops', async () => {
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    await pds.close();
    assert.equal(await closed, 1001);
  });
});
