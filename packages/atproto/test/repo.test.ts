import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encode } from '@atcute/cbor';
import * as oracle from '@atproto/repo';
import { Secp256k1Keypair } from '@atproto/crypto';
import { CID } from 'multiformats/cid';
import { type Cid, cidForCbor, formatCid, parseCid } from '../src/cid.ts';
import { writeCarBytes } from '../src/car.ts';
import { collectBytes } from '../src/car/writer.ts';
import { generateSigningKey } from '../src/crypto.ts';
import { coveringProof } from '../src/mst/proof.ts';
import { Mst } from '../src/mst/tree.ts';
import { BlockMap, MemoryBlockStore } from '../src/repo/block-store.ts';
import { decodeCommit, verifyCommitSignature } from '../src/repo/commit.ts';
import { exportRepo, exportRepoSince, recordProofCar, repoBlocks } from '../src/repo/export.ts';
import { importRepo } from '../src/repo/import.ts';
import { type CommitResult, Repo, type RecordWrite } from '../src/repo/repo.ts';
import { encodeNode } from '../src/mst/node.ts';

const fixtures = join(import.meta.dirname, '../../../test/fixtures/interop');
const DID = 'did:plc:abcdefghijklmnopqrstuvwx';
const post = (text: string) => ({ $type: 'app.bsky.feed.post', text, createdAt: '2024-01-01T00:00:00.000Z' });
const create = (rkey: string, text = rkey, collection = 'app.bsky.feed.post'): RecordWrite => ({
  action: 'create',
  collection,
  rkey,
  record: post(text),
});

async function newRepo(records = 300) {
  const key = await generateSigningKey();
  const store = new MemoryBlockStore();
  let result = await Repo.create(store, DID, key);
  store.applyCommit(result);
  for (let start = 0; start < records; start += 199) {
    const writes: RecordWrite[] = [];
    for (let i = start; i < Math.min(records, start + 199); i++)
      writes.push(create(`3k${String(i).padStart(11, 'a')}`, `post ${i}`));
    if (start === 0)
      writes.push({
        action: 'create',
        collection: 'app.bsky.actor.profile',
        rkey: 'self',
        record: { displayName: 'x' },
      });
    result = await result.repo.applyWrites(writes, key);
    store.applyCommit(result);
  }
  return { key, store, repo: Repo.load(store, result.cid), result };
}

describe('firehose commit proofs (interop fixtures)', () => {
  const cases = JSON.parse(readFileSync(join(fixtures, 'firehose/commit-proof-fixtures.json'), 'utf8'));
  for (const c of cases) {
    it(c.comment, () => {
      const leaf = parseCid(c.leafValue);
      let tree = Mst.create(new MemoryBlockStore());
      for (const k of c.keys) tree = tree.add(k, leaf);
      assert.equal(formatCid(tree.rootCid()), c.rootBeforeCommit);
      for (const k of c.adds) tree = tree.add(k, leaf);
      for (const k of c.dels) tree = tree.delete(k);
      assert.equal(formatCid(tree.rootCid()), c.rootAfterCommit);
      const proof = new BlockMap();
      for (const k of [...c.adds, ...c.dels]) coveringProof(tree, k, proof);
      assert.deepEqual(proof.cidStrings(), [...c.blocksInProof].sort());
    });
  }
});

describe('repository writer', () => {
  it('signs v3 commits with increasing revs and reports ops, prev, prevData and removed blocks', async () => {
    const key = await generateSigningKey('p256');
    const store = new MemoryBlockStore();
    const first = await Repo.create(store, DID, key, [create('3kaaaaaaaaaa2')]);
    store.applyCommit(first);
    assert.equal(first.since, null);
    assert.equal(first.prevData, null);
    assert.equal(first.commit.version, 3);
    assert.equal(first.commit.prev, null);
    assert.ok(await verifyCommitSignature(decodeCommit(first.commitBytes), key.did()));
    assert.ok(
      !(await verifyCommitSignature(decodeCommit(first.commitBytes), (await generateSigningKey('p256')).did())),
    );

    const second = await first.repo.applyWrites(
      [
        create('3kaaaaaaaaab2'),
        { action: 'update', collection: 'app.bsky.feed.post', rkey: '3kaaaaaaaaaa2', record: post('edited') },
      ],
      key,
    );
    store.applyCommit(second);
    assert.ok(second.rev > first.rev);
    assert.equal(second.since, first.rev);
    assert.equal(formatCid(second.prevData!), formatCid(first.data));
    assert.equal(formatCid(second.prevCommit!), formatCid(first.cid));
    const [op1, op2] = second.ops;
    assert.equal(op1!.action, 'create');
    assert.equal(op1!.prev, null);
    assert.equal(op2!.action, 'update');
    assert.equal(formatCid(op2!.prev!), formatCid(first.ops[0]!.cid!));
    const removed = second.removedCids.map(formatCid);
    assert.ok(removed.includes(formatCid(first.cid)), 'old commit removed');
    assert.ok(removed.includes(formatCid(first.ops[0]!.cid!)), 'replaced record removed');
    assert.ok(removed.includes(formatCid(first.data)), 'old root removed');
    assert.ok(second.newBlocks.has(second.cid) && second.proofBlocks.has(second.cid));
    assert.ok(second.newBlocks.has(op1!.cid!) && second.proofBlocks.has(op1!.cid!));

    const third = await second.repo.applyWrites(
      [{ action: 'delete', collection: 'app.bsky.feed.post', rkey: '3kaaaaaaaaab2' }],
      key,
    );
    store.applyCommit(third);
    assert.deepEqual(
      third.ops.map((o) => [o.action, o.cid, formatCid(o.prev!)]),
      [['delete', null, formatCid(op1!.cid!)]],
    );
    const loaded = Repo.load(store, third.cid);
    assert.equal(loaded.getRecord('app.bsky.feed.post', '3kaaaaaaaaab2'), null);
    assert.ok(loaded.getRecord('app.bsky.feed.post', '3kaaaaaaaaaa2'));
    // Only what is referenced is left in the store.
    const reachable = new Set<string>();
    for (const b of repoBlocks(store, third.cid)) reachable.add(formatCid(b.cid));
    assert.equal(store.size, reachable.size);
  });

  it('rejects bad batches with their own errors and leaves the repo unchanged', async () => {
    const { key, repo } = await newRepo(10);
    const tooMany = Array.from({ length: 201 }, (_, i) => create(`r${i}`));
    await assert.rejects(repo.applyWrites(tooMany, key), { code: 'TooManyWrites' });
    await assert.rejects(repo.applyWrites([create('x'), create('x')], key), { code: 'DuplicateWrite' });
    await assert.rejects(repo.applyWrites([create('3kaaaaaaaaaa0')], key), { code: 'RecordExists' });
    await assert.rejects(
      repo.applyWrites([{ action: 'delete', collection: 'app.bsky.feed.post', rkey: 'nope' }], key),
      {
        code: 'RecordNotFound',
      },
    );
    await assert.rejects(repo.applyWrites([create('x', 'x', 'not an nsid')], key), { code: 'InvalidWrite' });
    await assert.rejects(repo.applyWrites([create('a/b')], key), { code: 'InvalidWrite' });
    await assert.rejects(repo.applyWrites([create('ok')], key, { rev: repo.rev }), { code: 'StaleRev' });
    assert.equal(repo.data.count(), 11);
  });

  it('lists records by collection with cursor and reverse', async () => {
    const { repo } = await newRepo(120);
    const page1 = repo.listRecords('app.bsky.feed.post', { limit: 50 });
    const page2 = repo.listRecords('app.bsky.feed.post', { limit: 100, cursor: page1.at(-1)!.rkey });
    assert.equal(page1.length, 50);
    assert.equal(page2.length, 70);
    assert.ok(page2[0]!.rkey > page1.at(-1)!.rkey);
    const back = repo.listRecords('app.bsky.feed.post', { limit: 3, reverse: true });
    assert.deepEqual(
      back.map((r) => r.rkey),
      page2
        .slice(-3)
        .reverse()
        .map((r) => r.rkey),
    );
    assert.deepEqual(
      repo.listRecords('app.bsky.actor.profile').map((r) => r.rkey),
      ['self'],
    );
  });
});

describe('firehose proof blocks are enough to verify a commit by inversion', () => {
  it('inverting each commit on its proof blocks alone gives prevData', async () => {
    const { key, store, repo: start } = await newRepo(600);
    let repo = start;
    let n = 0;
    for (let round = 0; round < 25; round++) {
      const existing = repo.listRecords('app.bsky.feed.post', { limit: 1000 }).map((r) => r.rkey);
      const writes: RecordWrite[] = [];
      for (let i = 0; i < 1 + (round % 7); i++) writes.push(create(`3m${String(n++).padStart(11, 'c')}`));
      writes.push({
        action: 'update',
        collection: 'app.bsky.feed.post',
        rkey: existing[(round * 37) % existing.length]!,
        record: post(`u${round}`),
      });
      writes.push({
        action: 'delete',
        collection: 'app.bsky.feed.post',
        rkey: existing[(round * 53 + 1) % existing.length]!,
      });
      const result = await repo.applyWrites(writes, key);
      store.applyCommit(result);
      // A consumer holding only the event's blocks: undo the ops and land on prevData.
      const proofOnly = new MemoryBlockStore();
      for (const b of result.proofBlocks.entries()) proofOnly.putBlock(b.cid, b.bytes);
      let tree = Mst.load(proofOnly, decodeCommit(proofOnly.getBlock(result.cid)!).data);
      for (const op of [...result.ops].reverse()) {
        if (op.action === 'create') tree = tree.delete(op.path);
        else if (op.action === 'update') tree = tree.update(op.path, op.prev!);
        else tree = tree.add(op.path, op.prev!);
      }
      assert.equal(formatCid(tree.rootCid()), formatCid(result.prevData!), `round ${round}`);
      repo = result.repo;
    }
  });
});

describe('export, import and proofs (with @atproto/repo as the judge)', () => {
  it('our CAR passes verifyRepoCar and re-imports with the same records', async () => {
    const { key, store, repo } = await newRepo(450);
    const car = await collectBytes(exportRepo(store, repo.cid));
    const verified = await oracle.verifyRepoCar(car, DID, key.did());
    assert.equal(verified.creates.length, 451);
    const ours = await importRepo([car], { did: DID, signingKeys: key.did() });
    assert.equal(ours.recordCount, 451);
    assert.equal(formatCid(ours.data), formatCid(repo.data.rootCid()));
    const theirs = new Map(verified.creates.map((c) => [`${c.collection}/${c.rkey}`, c.cid.toString()]));
    for (const r of ours.records()) assert.equal(theirs.get(r.path), formatCid(r.cid));
    // Export order: commit first, then the root node.
    const blocks = [...repoBlocks(store, repo.cid)];
    assert.equal(formatCid(blocks[0]!.cid), formatCid(repo.cid));
    assert.equal(formatCid(blocks[1]!.cid), formatCid(repo.data.rootCid()));
  });

  it('imports a CAR the oracle exports, with blocks shuffled and duplicated', async () => {
    const keypair = await Secp256k1Keypair.create({ exportable: true });
    const storage = new oracle.MemoryBlockstore();
    const writes = Array.from({ length: 150 }, (_, i) => ({
      action: oracle.WriteOpAction.Create as const,
      collection: 'app.bsky.feed.like',
      rkey: `3l${String(i).padStart(11, 'b')}`,
      record: { $type: 'app.bsky.feed.like', createdAt: '2024-01-01T00:00:00.000Z', n: i },
    }));
    const repo = await oracle.Repo.create(storage, DID, keypair, writes as unknown as oracle.RecordCreateOp[]);
    const car = await collectBytes(oracle.getFullRepo(storage, repo.cid));
    const ours = await importRepo([car], { did: DID, signingKeys: keypair.did() });
    assert.equal(ours.recordCount, 150);
    assert.equal(formatCid(ours.data), repo.data.pointer.toString());
    // Same blocks, reversed, with duplicates: still fine.
    const blocks = [...ours.blocks()];
    const scrambled = await writeCarBytes([ours.commitCid], [...blocks].reverse().concat(blocks.slice(0, 5)));
    const again = await importRepo([scrambled], { did: DID, signingKeys: keypair.did() });
    assert.equal(again.recordCount, 150);
  });

  it('record proofs verify with the oracle, for present and absent records', async () => {
    const { key, store, repo } = await newRepo(300);
    const present = await recordProofCar(store, repo.cid, 'app.bsky.feed.post', '3kaaaaaaaa100');
    const absent = await recordProofCar(store, repo.cid, 'app.bsky.feed.post', '3kzzzzzzzzzzz');
    const cid = repo.getRecordCid('app.bsky.feed.post', '3kaaaaaaaa100');
    assert.ok(cid);
    const ok = await oracle.verifyProofs(
      present,
      [{ collection: 'app.bsky.feed.post', rkey: '3kaaaaaaaa100', cid: CID.parse(formatCid(cid)) }],
      DID,
      key.did(),
    );
    assert.equal(ok.verified.length, 1);
    const none = await oracle.verifyProofs(
      absent,
      [{ collection: 'app.bsky.feed.post', rkey: '3kzzzzzzzzzzz', cid: null }],
      DID,
      key.did(),
    );
    assert.equal(none.verified.length, 1);
    const wrong = await oracle.verifyProofs(
      absent,
      [{ collection: 'app.bsky.feed.post', rkey: '3kzzzzzzzzzzz', cid: CID.parse(formatCid(cid)) }],
      DID,
      key.did(),
    );
    assert.equal(wrong.unverified.length, 1);
  });

  it('exports the blocks written after a rev', async () => {
    const { key, store, repo } = await newRepo(50);
    const next: CommitResult = await repo.applyWrites([create('3kzzzzzzzzzz2')], key);
    store.applyCommit(next);
    const car = await collectBytes(exportRepoSince(store, next.cid, repo.rev));
    const { oracleBlocks } = { oracleBlocks: await oracle.readCarWithRoot(car) };
    assert.equal(oracleBlocks.root.toString(), formatCid(next.cid));
    const got = oracleBlocks.blocks
      .entries()
      .map((e) => e.cid.toString())
      .sort();
    assert.deepEqual(got, next.newBlocks.cidStrings());
  });
});

describe('import rejects bad repositories, each with its own error', () => {
  async function fixture() {
    const { key, store, repo } = await newRepo(230);
    const blocks = [...repoBlocks(store, repo.cid)];
    return { key, repo, blocks, store };
  }
  const reject = async (car: Uint8Array, code: string, opts: { did?: string; signingKeys: string | null }) => {
    const staging = new MemoryBlockStore();
    await assert.rejects(importRepo([car], { ...opts, staging }), (err: Error & { code?: string }) => {
      assert.equal(err.code, code, err.message);
      assert.equal(err.name, 'RepoError');
      return true;
    });
  };

  it('truncated CAR, wrong root, bad block hash, oversized block', async () => {
    const { key, repo, blocks } = await fixture();
    const car = await writeCarBytes([repo.cid], blocks);
    await reject(car.subarray(0, car.length - 7), 'TruncatedCar', { signingKeys: key.did() });
    const stray = cidForCbor(encode({ hello: 'world' }));
    await reject(await writeCarBytes([stray], blocks), 'WrongRoot', { signingKeys: key.did() });
    await reject(await writeCarBytes([blocks[1]!.cid], blocks), 'WrongRoot', { signingKeys: key.did() });
    const tampered = blocks.map((b, i) => (i === 5 ? { cid: b.cid, bytes: encode({ text: 'forged' }) } : b));
    await reject(await writeCarBytes([repo.cid], tampered), 'BadBlockHash', { signingKeys: key.did() });
    const big = encode({ pad: 'x'.repeat(3 * 1024 * 1024) });
    await reject(await writeCarBytes([repo.cid], [...blocks, { cid: cidForCbor(big), bytes: big }]), 'BlockTooLarge', {
      signingKeys: key.did(),
    });
  });

  it('bad signature and wrong DID', async () => {
    const { key, repo, blocks } = await fixture();
    const car = await writeCarBytes([repo.cid], blocks);
    await reject(car, 'BadSignature', { signingKeys: (await generateSigningKey()).did() });
    await reject(car, 'WrongDid', { did: 'did:plc:someoneelseentirely00', signingKeys: key.did() });
    const ok = await importRepo([car], { did: DID, signingKeys: [(await generateSigningKey()).did(), key.did()] });
    assert.equal(ok.recordCount, 231);
  });

  it('missing record and missing node', async () => {
    const { key, repo, blocks, store } = await fixture();
    const recordCid = repo.getRecordCid('app.bsky.feed.post', '3kaaaaaaaaa10')!;
    const withoutRecord = blocks.filter((b) => formatCid(b.cid) !== formatCid(recordCid));
    await reject(await writeCarBytes([repo.cid], withoutRecord), 'MissingRecord', { signingKeys: key.did() });
    const root = repo.data.rootCid();
    const rootNode = store.getBlock(root)!;
    const child = blocks.find((b, i) => i > 1 && rootNode && b.cid.codec === 0x71 && isNode(b.bytes))!;
    const withoutNode = blocks.filter((b) => formatCid(b.cid) !== formatCid(child.cid));
    await reject(await writeCarBytes([repo.cid], withoutNode), 'MissingNode', { signingKeys: key.did() });
  });

  it('unsorted keys and non-canonical CBOR', async () => {
    const key = await generateSigningKey();
    const value = cidForCbor(encode(post('x')));
    const recordBlock = { cid: value, bytes: encode(post('x')) };
    // A single node with two keys in the wrong order, under a correctly signed commit.
    const unsorted = encodeNode({
      left: null,
      keys: ['app.bsky.feed.post/b', 'app.bsky.feed.post/a'],
      values: [value, value],
      rights: [null, null],
    });
    await reject(await signedCar(key, unsorted, [recordBlock]), 'UnsortedKeys', { signingKeys: key.did() });
    // Non-canonical record: map keys out of order ({"b":1,"a":2} written by hand).
    const bad = new Uint8Array([0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02]);
    const badCid = cidForCbor(bad);
    const node = encodeNode({
      left: null,
      keys: ['app.bsky.feed.post/3kaaaaaaaaaaa'],
      values: [badCid],
      rights: [null],
    });
    await reject(await signedCar(key, node, [{ cid: badCid, bytes: bad }]), 'NonCanonicalCbor', {
      signingKeys: key.did(),
    });
  });
});

function isNode(bytes: Uint8Array): boolean {
  return bytes[0] === 0xa2 && bytes[1] === 0x61 && bytes[2] === 0x65;
}

async function signedCar(
  key: Awaited<ReturnType<typeof generateSigningKey>>,
  nodeBytes: Uint8Array,
  extra: { cid: Cid; bytes: Uint8Array }[],
) {
  const { signCommit } = await import('../src/repo/commit.ts');
  const nodeCid = cidForCbor(nodeBytes);
  const commit = await signCommit({ did: DID, data: nodeCid, rev: '3kaaaaaaaaaa2' }, key);
  return writeCarBytes(
    [commit.cid],
    [{ cid: commit.cid, bytes: commit.bytes }, { cid: nodeCid, bytes: nodeBytes }, ...extra],
  );
}
