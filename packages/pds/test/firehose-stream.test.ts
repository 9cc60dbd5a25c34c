// subscribeRepos over a real WebSocket on loopback: cursor rules, cut-over, slow consumers,
// and the crawler notifier.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encode } from '@atcute/cbor';
import { cidForCbor } from '@portage/atproto/cid';
import WebSocket from 'ws';
import { attachSubscribeRepos } from '../src/api/com/atproto/sync/subscribeRepos.ts';
import { CrawlerNotifier } from '../src/sequencer/crawlers.ts';
import { Firehose } from '../src/sequencer/firehose.ts';
import { type DecodedFrame, decodeFrame } from '../src/sequencer/frames.ts';
import { Sequencer } from '../src/sequencer/sequencer.ts';

const DID = 'did:plc:abcdefghijklmnopqrstuvwx';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'portage-firehose-test-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Rig {
  seq: Sequencer;
  firehose: Firehose;
  url: string;
  port: number;
  clock: { now: number };
  close(): Promise<void>;
}

let rigCount = 0;
async function startRig(opts: { windowMs?: number; maxBufferedBytes?: number; pageSize?: number } = {}): Promise<Rig> {
  const clock = { now: Date.now() };
  const now = () => clock.now;
  const seq = new Sequencer({ dbPath: join(dir, `seq-${++rigCount}.sqlite`), now });
  const firehose = new Firehose({
    sequencer: seq,
    backfillWindowMs: opts.windowMs ?? 60_000,
    maxBufferedBytes: opts.maxBufferedBytes,
    backfillPageSize: opts.pageSize,
    closeTimeoutMs: 60_000,
    now,
  });
  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  const detach = attachSubscribeRepos(server, { firehose });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    seq,
    firehose,
    port,
    url: `ws://127.0.0.1:${port}/xrpc/com.atproto.sync.subscribeRepos`,
    clock,
    async close() {
      firehose.close();
      detach();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      seq.close();
    },
  };
}

/** A subscriber that decodes every frame; `until` resolves when a predicate holds. */
class Client {
  readonly frames: DecodedFrame[] = [];
  readonly ws: WebSocket;
  closed: Promise<number>;
  private waiters: Array<() => void> = [];

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data: Buffer) => {
      this.frames.push(decodeFrame(new Uint8Array(data)));
      for (const w of this.waiters) w();
    });
    this.closed = new Promise((resolve) => this.ws.on('close', (code) => resolve(code)));
  }

  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
  }

  seqs(): number[] {
    return this.frames.filter((f) => f.op === 1 && f.t !== '#info').map((f) => f.body.seq as number);
  }

  until(pred: () => boolean): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (pred()) {
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve();
        }
      };
      this.waiters.push(check);
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

function identity(seq: Sequencer, n: number): void {
  for (let i = 0; i < n; i++) seq.sequenceIdentity(null, { did: DID, handle: `h${i}.test` });
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('subscribeRepos cursors', () => {
  test('no cursor: live events only', async () => {
    const rig = await startRig();
    identity(rig.seq, 3);
    const client = new Client(rig.url);
    await client.opened();
    await waitFor(() => rig.firehose.subscriberCount === 1);
    identity(rig.seq, 2);
    await client.until(() => client.seqs().length === 2);
    assert.deepEqual(client.seqs(), [4, 5]);
    client.close();
    await rig.close();
  });

  test('cursor in the window: backfill then live, no gap and no duplicate while writes run', async () => {
    const rig = await startRig({ pageSize: 37 });
    identity(rig.seq, 500);
    const client = new Client(`${rig.url}?cursor=120`);
    // Keep writing while the client backfills, so the cut-over happens under load.
    let writing = true;
    const writer = (async () => {
      while (writing) {
        identity(rig.seq, 3);
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await client.until(() => client.seqs().length >= 380 + 300);
    writing = false;
    await writer;
    const last = rig.seq.lastSeq();
    await client.until(() => client.seqs().at(-1) === last);
    assert.deepEqual(client.seqs(), range(121, last));
    client.close();
    await rig.close();
  });

  test('reconnecting with the last seq seen resumes with every event exactly once', async () => {
    const rig = await startRig();
    identity(rig.seq, 10);
    const first = new Client(`${rig.url}?cursor=0`);
    await first.until(() => first.seqs().length === 10);
    first.close();
    identity(rig.seq, 5);
    const second = new Client(`${rig.url}?cursor=${first.seqs().at(-1)}`);
    await second.until(() => second.seqs().length === 5);
    identity(rig.seq, 1);
    await second.until(() => second.seqs().length === 6);
    assert.deepEqual([...first.seqs(), ...second.seqs()], range(1, 16));
    second.close();
    await rig.close();
  });

  test('a future cursor gets FutureCursor and the connection is closed', async () => {
    const rig = await startRig();
    identity(rig.seq, 3);
    const client = new Client(`${rig.url}?cursor=10`);
    await client.closed;
    assert.equal(client.frames.length, 1);
    assert.equal(client.frames[0]!.op, -1);
    assert.equal(client.frames[0]!.body.error, 'FutureCursor');
    await rig.close();
  });

  test('a cursor older than the window gets #info OutdatedCursor, then events from the window start', async () => {
    const rig = await startRig({ windowMs: 1000 });
    identity(rig.seq, 5); // seq 1-5, outside the window once the clock moves on
    rig.clock.now += 5000;
    identity(rig.seq, 3); // seq 6-8, inside
    const client = new Client(`${rig.url}?cursor=2`);
    await client.until(() => client.seqs().length === 3);
    assert.equal(client.frames[0]!.t, '#info');
    assert.equal(client.frames[0]!.body.name, 'OutdatedCursor');
    assert.deepEqual(client.seqs(), [6, 7, 8]);
    // A cursor at the window's edge is not outdated.
    const edge = new Client(`${rig.url}?cursor=5`);
    await edge.until(() => edge.seqs().length === 3);
    assert.equal(edge.frames[0]!.t, '#identity');
    client.close();
    edge.close();
    await rig.close();
  });

  test('a malformed cursor gets InvalidRequest', async () => {
    const rig = await startRig();
    const client = new Client(`${rig.url}?cursor=abc`);
    await client.closed;
    assert.equal(client.frames[0]!.body.error, 'InvalidRequest');
    await rig.close();
  });
});

/** Opens a WebSocket by hand and then never reads from it: a consumer that fell behind. */
async function stalledSubscriber(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(
    'GET /xrpc/com.atproto.sync.subscribeRepos HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n' +
      'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.pause();
  return socket;
}

describe('slow consumers', () => {
  test('a subscriber that stops reading gets ConsumerTooSlow and is dropped; others get every event', async () => {
    const rig = await startRig({ maxBufferedBytes: 256 * 1024 });
    const stalled = await stalledSubscriber(rig.port);
    const healthy = new Client(rig.url);
    await healthy.opened();
    await waitFor(() => rig.firehose.subscriberCount === 2);
    // Large #commit events until the stalled socket's buffers overflow.
    const big = encode({ text: 'x'.repeat(500_000) });
    let events = 0;
    while (rig.firehose.tooSlowCount === 0) {
      const commit = encode({ did: DID, version: 3, n: events });
      rig.seq.sequenceCommit(null, {
        did: DID,
        commit: cidForCbor(commit),
        rev: '3l4zzzzzzzz22',
        since: null,
        prevData: null,
        ops: [{ action: 'create', path: `app.bsky.feed.post/${events}`, cid: cidForCbor(big) }],
        blocks: [
          { cid: cidForCbor(commit), bytes: commit },
          { cid: cidForCbor(big), bytes: big },
        ],
      });
      events++;
      assert.ok(events < 500, 'the stalled subscriber was never detected');
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(rig.firehose.subscriberCount, 2, 'dropped from the fan-out, socket closing');
    identity(rig.seq, 1);
    await healthy.until(() => healthy.seqs().length === events + 1);
    assert.deepEqual(healthy.seqs(), range(1, events + 1));

    // The stalled consumer, once it reads again, finds the error frame as its last message.
    const received = await readAll(stalled);
    const frames = parseWsFrames(received);
    const last = decodeFrame(frames.at(-1)!);
    assert.equal(last.op, -1);
    assert.equal(last.body.error, 'ConsumerTooSlow');
    assert.ok(frames.length - 1 < events, 'it did not get every event');
    healthy.close();
    await rig.close();
  });
});

/** Reads the rest of the stream (the HTTP response was consumed earlier) up to the close frame. */
function readAll(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.resume();
  return new Promise((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      if (containsCloseFrame(all)) {
        socket.destroy();
        resolve(all);
      }
    });
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** Unmasked server-to-client frames: binary payloads, up to (not including) the close frame. */
function parseWsFrames(buf: Buffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  while (o + 2 <= buf.length) {
    const opcode = buf[o]! & 0x0f;
    let len = buf[o + 1]! & 0x7f;
    let p = o + 2;
    if (len === 126) {
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    if (p + len > buf.length) break;
    if (opcode === 0x8) break;
    if (opcode === 0x2) out.push(new Uint8Array(buf.subarray(p, p + len)));
    o = p + len;
  }
  return out;
}

function containsCloseFrame(buf: Buffer): boolean {
  let o = 0;
  while (o + 2 <= buf.length) {
    const opcode = buf[o]! & 0x0f;
    let len = buf[o + 1]! & 0x7f;
    let p = o + 2;
    if (len === 126) {
      if (p + 2 > buf.length) return false;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (p + 8 > buf.length) return false;
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    if (p + len > buf.length) return false;
    if (opcode === 0x8) return true;
    o = p + len;
  }
  return false;
}

async function waitFor(pred: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !pred(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(pred(), 'condition not reached');
}

describe('crawler notifier', () => {
  test('requestCrawl on start, then on activity at most once per interval', async () => {
    const hits: unknown[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        hits.push({ path: req.url, method: req.method, body: JSON.parse(body) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const crawler = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const clock = { now: 1_000_000 };
    const notifier = new CrawlerNotifier({ hostname: 'pds.example', crawlers: [crawler], now: () => clock.now });
    const rig = await startRig();
    const unwatch = notifier.watch(rig.seq);

    await notifier.notify();
    assert.deepEqual(hits, [
      { path: '/xrpc/com.atproto.sync.requestCrawl', method: 'POST', body: { hostname: 'pds.example' } },
    ]);
    identity(rig.seq, 3);
    await notifier.idle();
    assert.equal(hits.length, 1, 'activity within 20 minutes of the last request is not reported');
    clock.now += 20 * 60 * 1000;
    identity(rig.seq, 2);
    await notifier.idle();
    assert.equal(hits.length, 2, 'activity after 20 minutes triggers one request');

    unwatch();
    await rig.close();
    await new Promise((resolve) => server.close(resolve));
  });

  test('an unreachable crawler is reported, not thrown', async () => {
    const errors: string[] = [];
    const notifier = new CrawlerNotifier({
      hostname: 'pds.example',
      crawlers: ['http://127.0.0.1:9'],
      onError: (_err, crawler) => errors.push(crawler),
    });
    await notifier.notify();
    assert.deepEqual(errors, ['http://127.0.0.1:9']);
  });
});
