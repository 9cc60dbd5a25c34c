// The sequencer's durable log and outbox, and the event frames it produces.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fromUint8Array } from '@atcute/car';
import { encode, fromBytes, fromCidLink } from '@atcute/cbor';
import { cidForCbor, formatCid } from '@portage/atproto/cid';
import Database from 'better-sqlite3';
import { type CommitEventData, SequencerError } from '../src/sequencer/events.ts';
import { FirehoseService } from '../src/sequencer/firehose-service.ts';
import { decodeFrame } from '../src/sequencer/frames.ts';
import { Sequencer } from '../src/sequencer/sequencer.ts';

const DID = 'did:plc:abcdefghijklmnopqrstuvwx';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'portage-sequencer-test-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
function freshPaths(): { seqPath: string; hostPath: string } {
  counter++;
  return { seqPath: join(dir, `seq-${counter}.sqlite`), hostPath: join(dir, `actor-${counter}.sqlite`) };
}

function block(value: unknown) {
  const bytes = encode(value);
  return { cid: cidForCbor(bytes), bytes };
}

/** A commit event with `n` creates whose record blocks are included. */
export function fakeCommit(n: number, opts: { recordBytes?: number; rev?: string } = {}): CommitEventData {
  const records = Array.from({ length: n }, (_, i) =>
    block({ $type: 'app.bsky.feed.post', text: 'x'.repeat(opts.recordBytes ?? 10), i, nonce: Math.random() }),
  );
  const commit = block({ did: DID, version: 3, data: null, rev: opts.rev ?? '3l4zzzzzzzz22', nonce: Math.random() });
  return {
    did: DID,
    commit: commit.cid,
    rev: opts.rev ?? '3l4zzzzzzzz22',
    since: '3l4zzzzzzzz2a',
    prevData: records[0]?.cid ?? null,
    ops: records.map((r, i) => ({ action: 'create' as const, path: `app.bsky.feed.post/rkey${i}`, cid: r.cid })),
    blocks: [commit, ...records],
  };
}

function openHost(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE IF NOT EXISTS record (uri TEXT PRIMARY KEY)');
  return db;
}

function outboxCount(db: Database.Database): number {
  return (db.prepare('SELECT count(*) AS n FROM seq_outbox').get() as { n: number }).n;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('sequence numbers', () => {
  test('strictly increase and continue after a restart, even when every event was pruned', () => {
    const { seqPath } = freshPaths();
    let seq = new Sequencer({ dbPath: seqPath });
    for (let i = 0; i < 3; i++) seq.sequenceIdentity(null, { did: DID, handle: `h${i}.test` });
    assert.deepEqual(
      seq.readAfter(0, 10).map((e) => e.seq),
      [1, 2, 3],
    );
    seq.close();

    seq = new Sequencer({ dbPath: seqPath });
    assert.equal(seq.lastSeq(), 3);
    seq.sequenceAccount(null, { did: DID, active: false, status: 'deactivated' });
    assert.equal(seq.lastSeq(), 4);
    assert.equal(seq.prune(Date.now() + 1000), 4);
    assert.equal(seq.readAfter(0, 10).length, 0);
    seq.close();

    seq = new Sequencer({ dbPath: seqPath });
    seq.sequenceIdentity(null, { did: DID });
    assert.deepEqual(
      seq.readAfter(0, 10).map((e) => e.seq),
      [5],
    );
    seq.close();
  });
});

describe('reads', () => {
  test('recent events served from memory are exactly those in the log, whatever the cursor', () => {
    const { seqPath } = freshPaths();
    // A small memory budget: the oldest events are only in the database.
    const seq = new Sequencer({ dbPath: seqPath, recentBytes: 2000 });
    for (let i = 0; i < 60; i++) seq.sequenceIdentity(null, { did: DID, handle: `handle${i}.test` });
    const fromDisk = new Sequencer({ dbPath: seqPath });
    for (const cursor of [0, 1, 20, 45, 58, 59, 60]) {
      for (const limit of [1, 7, 100]) {
        const memory = seq.readAfter(cursor, limit);
        const disk = fromDisk.readAfter(cursor, limit);
        assert.deepEqual(
          memory.map((e) => [e.seq, Buffer.from(e.frame).toString('hex')]),
          disk.map((e) => [e.seq, Buffer.from(e.frame).toString('hex')]),
          `cursor ${cursor}, limit ${limit}`,
        );
      }
    }
    assert.equal(seq.readAfter(45, 100).length, 15);
    fromDisk.close();
    seq.close();
  });
});

describe('outbox', () => {
  test('an event written in the host transaction is sequenced after the commit', async () => {
    const { seqPath, hostPath } = freshPaths();
    const seq = new Sequencer({ dbPath: seqPath });
    const db = openHost(hostPath);
    const heard: number[] = [];
    seq.onEvent((e) => heard.push(e.seq));
    db.transaction(() => {
      db.prepare('INSERT INTO record (uri) VALUES (?)').run('at://a/b/c');
      seq.sequenceCommit({ key: DID, db }, fakeCommit(2));
      // Not yet: the host transaction has not committed.
      assert.equal(seq.lastSeq(), 0);
    })();
    await tick();
    assert.deepEqual(heard, [1]);
    assert.equal(outboxCount(db), 0);
    seq.close();
    db.close();
  });

  test('a rolled-back host transaction leaves no event', async () => {
    const { seqPath, hostPath } = freshPaths();
    const seq = new Sequencer({ dbPath: seqPath });
    const db = openHost(hostPath);
    assert.throws(() =>
      db.transaction(() => {
        seq.sequenceCommit({ key: DID, db }, fakeCommit(1));
        throw new Error('write failed');
      })(),
    );
    await tick();
    assert.equal(seq.lastSeq(), 0);
    seq.sequenceIdentity(null, { did: DID });
    assert.equal(seq.lastSeq(), 1, 'the rolled-back event consumed no seq');
    seq.close();
    db.close();
  });

  test('events committed but not sequenced before a crash are recovered at start-up', async () => {
    const { seqPath, hostPath } = freshPaths();
    let seq = new Sequencer({ dbPath: seqPath });
    let db = openHost(hostPath);
    seq.sequenceIdentity(null, { did: DID });
    db.transaction(() => {
      seq.sequenceCommit({ key: DID, db }, fakeCommit(1, { rev: '3l4zzzzzzzz32' }));
      seq.sequenceAccount({ key: DID, db }, { did: DID, active: true });
    })();
    // "Crash": the process stops before the scheduled flush runs.
    seq.close();
    db.close();
    await tick();

    db = openHost(hostPath);
    const opened: string[] = [];
    seq = new Sequencer({
      dbPath: seqPath,
      openOutboxHost: (key) => {
        opened.push(key);
        return key === DID ? db : undefined;
      },
    });
    assert.equal(seq.recover(), 2);
    assert.deepEqual(opened, [DID]);
    const events = seq.readAfter(0, 10);
    assert.deepEqual(
      events.map((e) => [e.seq, e.type]),
      [
        [1, 'identity'],
        [2, 'commit'],
        [3, 'account'],
      ],
    );
    assert.equal(decodeFrame(events[1]!.frame).body.rev, '3l4zzzzzzzz32');
    // Nothing left to recover the next time.
    assert.equal(seq.recover(), 0);
    seq.close();
    db.close();
  });

  test('an outbox row already moved into the log is not sequenced twice', async () => {
    const { seqPath, hostPath } = freshPaths();
    const seq = new Sequencer({ dbPath: seqPath, openOutboxHost: () => db });
    const db = openHost(hostPath);
    db.transaction(() => seq.sequenceIdentity({ key: DID, db }, { did: DID, handle: 'a.test' }))();
    // Keep a copy of the row as it was before the sequencer deleted it.
    const row = db.prepare('SELECT event_id, type, did, body FROM seq_outbox').get() as Record<string, unknown>;
    await tick();
    assert.equal(seq.lastSeq(), 1);
    // Simulate a crash between the log commit and the outbox delete.
    db.prepare('INSERT INTO seq_outbox (event_id, type, did, body) VALUES (?, ?, ?, ?)').run(
      row.event_id,
      row.type,
      row.did,
      row.body,
    );
    seq.db.prepare('INSERT OR IGNORE INTO outbox_host (key) VALUES (?)').run(DID);
    assert.equal(seq.recover(), 0);
    assert.equal(seq.lastSeq(), 1);
    assert.equal(outboxCount(db), 0);
    seq.close();
    db.close();
  });

  test('explicit flush inside an open transaction is refused', () => {
    const { seqPath, hostPath } = freshPaths();
    const seq = new Sequencer({ dbPath: seqPath });
    const db = openHost(hostPath);
    db.transaction(() => {
      assert.throws(() => seq.flush({ key: DID, db }), SequencerError);
    })();
    seq.close();
    db.close();
  });
});

describe('frames', () => {
  test('#commit carries the CAR of new and proof blocks, ops with cid and prev, prevData, tooBig false', () => {
    const { seqPath } = freshPaths();
    const seq = new Sequencer({ dbPath: seqPath });
    const data = fakeCommit(2);
    const prev = block({ old: true });
    const proof = block({ l: null, e: [] });
    data.ops.push({ action: 'update', path: 'app.bsky.feed.post/rkey0', cid: data.ops[0]!.cid, prev: prev.cid });
    data.ops.push({ action: 'delete', path: 'app.bsky.feed.post/old', cid: null, prev: prev.cid });
    data.blocks = [...data.blocks, proof, proof];
    seq.sequenceCommit(null, data);
    const frame = decodeFrame(seq.readAfter(0, 1)[0]!.frame);
    assert.equal(frame.op, 1);
    assert.equal(frame.t, '#commit');
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- decoded CBOR, checked field by field
    const body = frame.body as Record<string, any>;
    assert.equal(body.seq, 1);
    assert.equal(body.repo, DID);
    assert.equal(formatCid(fromCidLink(body.commit)), formatCid(data.commit));
    assert.equal(body.rev, data.rev);
    assert.equal(body.since, data.since);
    assert.equal(formatCid(fromCidLink(body.prevData)), formatCid(data.prevData!));
    assert.equal(body.tooBig, false);
    assert.equal(body.rebase, false);
    assert.deepEqual(body.blobs, []);
    assert.ok(!Number.isNaN(Date.parse(body.time)));
    assert.equal(body.ops.length, 4);
    assert.equal(body.ops[0].action, 'create');
    assert.equal(body.ops[0].prev, undefined);
    assert.equal(formatCid(fromCidLink(body.ops[2].prev)), formatCid(prev.cid));
    assert.equal(body.ops[3].cid, null);

    const car = fromUint8Array(fromBytes(body.blocks));
    assert.equal(car.roots.length, 1);
    assert.equal(car.roots[0]!.$link, formatCid(data.commit));
    const cids = [...car].map((entry) => formatCid(entry.cid));
    // commit + 2 records + the proof block once (duplicates are written once)
    assert.equal(cids.length, 4);
    assert.equal(new Set(cids).size, 4);
    assert.ok(cids.includes(formatCid(proof.cid)));
    seq.close();
  });

  test('#sync, #identity and #account bodies', () => {
    const { seqPath } = freshPaths();
    const seq = new Sequencer({ dbPath: seqPath });
    const commit = block({ did: DID, version: 3, rev: '3l4zzzzzzzz22' });
    seq.sequenceSync(null, { did: DID, commit: commit.cid, commitBytes: commit.bytes, rev: '3l4zzzzzzzz22' });
    seq.sequenceIdentity(null, { did: DID, handle: 'alice.test' });
    seq.sequenceAccount(null, { did: DID, active: false, status: 'deactivated' });
    seq.sequenceAccount(null, { did: DID, active: true });
    const [sync, identity, deactivated, active] = seq.readAfter(0, 10).map((e) => decodeFrame(e.frame));
    assert.equal(sync!.t, '#sync');
    const syncBody = sync!.body as { blocks: { $bytes: string } };
    assert.deepEqual(Object.keys(syncBody).sort(), ['blocks', 'did', 'rev', 'seq', 'time']);
    const car = fromUint8Array(fromBytes(syncBody.blocks));
    assert.equal(car.roots[0]!.$link, formatCid(commit.cid));
    assert.equal([...car].length, 1);
    assert.equal(identity!.t, '#identity');
    assert.equal(identity!.body.handle, 'alice.test');
    assert.equal(identity!.body.seq, 2);
    assert.equal(deactivated!.t, '#account');
    assert.equal(deactivated!.body.active, false);
    assert.equal(deactivated!.body.status, 'deactivated');
    assert.equal(active!.body.active, true);
    assert.equal('status' in active!.body, false);
    seq.close();
  });

  test('limits: more than 200 ops or 2,000,000 bytes of blocks is refused, and nothing is logged', () => {
    const { seqPath } = freshPaths();
    const seq = new Sequencer({ dbPath: seqPath });
    seq.sequenceCommit(null, fakeCommit(200));
    assert.throws(
      () => seq.sequenceCommit(null, fakeCommit(201)),
      (err: unknown) => err instanceof SequencerError && err.code === 'CommitTooLarge' && /201/.test(err.message),
    );
    assert.throws(
      () => seq.sequenceCommit(null, fakeCommit(3, { recordBytes: 700_000 })),
      (err: unknown) => err instanceof SequencerError && err.code === 'CommitTooLarge' && /bytes/.test(err.message),
    );
    assert.equal(seq.lastSeq(), 1);
    seq.close();
  });

  test('malformed events are refused with a message naming the problem', () => {
    const { seqPath } = freshPaths();
    const seq = new Sequencer({ dbPath: seqPath });
    const noPrev = fakeCommit(1);
    noPrev.ops = [{ action: 'update', path: 'app.bsky.feed.post/a', cid: noPrev.ops[0]!.cid }];
    assert.throws(() => seq.sequenceCommit(null, noPrev), /previous record CID/);
    const noCommitBlock = fakeCommit(1);
    noCommitBlock.blocks = [...noCommitBlock.blocks].slice(1);
    assert.throws(() => seq.sequenceCommit(null, noCommitBlock), /commit block/);
    assert.throws(() => seq.sequenceAccount(null, { did: DID, active: false }), /status/);
    assert.throws(() => seq.sequenceIdentity(null, { did: 'alice' }), /not a DID/);
    assert.equal(seq.lastSeq(), 0);
    seq.close();
  });
});

describe('FirehoseService', () => {
  test('events written in the account database transaction are recovered after a crash', async () => {
    const serviceDir = join(dir, `service-${++counter}`);
    const accountDb = openHost(join(dir, `account-${counter}.sqlite`));
    const actorDb = openHost(join(dir, `actor-svc-${counter}.sqlite`));
    const options = {
      dataDirectory: serviceDir,
      hostname: 'localhost',
      crawlers: [],
      accountDb,
      openActorDb: (did: string) => (did === DID ? actorDb : undefined),
    };
    let service = new FirehoseService(options);
    accountDb.transaction(() => {
      accountDb.prepare('INSERT INTO record (uri) VALUES (?)').run('handle change');
      service.sequencer.sequenceIdentity(service.accountHost(accountDb), { did: DID, handle: 'new.test' });
    })();
    actorDb.transaction(() => service.sequencer.sequenceCommit({ key: DID, db: actorDb }, fakeCommit(1)))();
    // Crash before the flush: the events exist only in the two outboxes.
    service.close();
    await tick();
    service = new FirehoseService(options);
    const types = service.sequencer.readAfter(0, 10).map((e) => e.type);
    assert.deepEqual(types.sort(), ['commit', 'identity']);
    assert.equal(outboxCount(accountDb) + outboxCount(actorDb), 0);
    service.close();
    accountDb.close();
    actorDb.close();
  });
});
