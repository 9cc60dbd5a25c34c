// Differential test against the reference implementation (@atproto/repo's MST, the oracle):
// long random sequences of creates, updates and deletes with realistic keys must give the same
// root CID after every batch, and our diff must report exactly the batch's net record changes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '@atcute/cbor';
import * as oracle from '@atproto/repo';
import { CID } from 'multiformats/cid';
import { type Cid, cidForCbor, formatCid } from '../src/cid.ts';
import { diffTrees } from '../src/mst/diff.ts';
import { asciiKeyHeight } from '../src/mst/keys.ts';
import { Mst } from '../src/mst/tree.ts';
import { MemoryBlockStore } from '../src/repo/block-store.ts';
import { formatTid } from '../src/tid.ts';
import { seededRandom } from '../../../test/support/seeded-random.ts';

const COLLECTIONS = [
  'app.bsky.feed.post',
  'app.bsky.feed.like',
  'app.bsky.graph.follow',
  'app.bsky.feed.repost',
  'com.example.very-long.collection-name.record',
];
const SELF_COLLECTIONS = [
  'app.bsky.actor.profile',
  'chat.bsky.actor.declaration',
  'app.bsky.feed.generator',
  'app.bsky.graph.list',
];

/** Realistic keys: TIDs (mostly), `self`, long keys, and keys picked for their height (2-4). */
function keySource(random: () => number) {
  let micros = 1_700_000_000_000_000;
  const tall: string[] = [];
  // Keys at the upper layers change the tree's shape the most; search some out.
  for (let i = 0; tall.length < 300; i++) {
    const key = `app.bsky.feed.like/${formatTid(1_690_000_000_000_000 + i * 997, 7)}`;
    if (asciiKeyHeight(key) >= 2) tall.push(key);
  }
  return (): string => {
    const r = random();
    if (r < 0.75) {
      micros += 1 + Math.floor(random() * 5_000_000);
      return `${COLLECTIONS[Math.floor(random() * COLLECTIONS.length)]}/${formatTid(micros, Math.floor(random() * 1024))}`;
    }
    if (r < 0.8) return `${SELF_COLLECTIONS[Math.floor(random() * SELF_COLLECTIONS.length)]}/self`;
    if (r < 0.88) {
      const n = 100 + Math.floor(random() * 400);
      let rkey = '';
      for (let i = 0; i < n; i++) rkey += 'abcdefghijklmnopqrstuvwxyz0123456789-_:~.'[Math.floor(random() * 41)];
      return `app.bsky.feed.post/${rkey}`;
    }
    return tall[Math.floor(random() * tall.length)] as string;
  };
}

describe('MST differential test against @atproto/repo', () => {
  it('same root after every batch over >= 10,000 random creates, updates and deletes', async () => {
    const seed = Number(process.env.MST_DIFF_SEED ?? 20260101);
    const random = seededRandom(seed);
    const nextKey = keySource(random);
    const store = new MemoryBlockStore();
    const oracleStore = new oracle.MemoryBlockstore();
    let ours = Mst.create(store);
    let theirs = await oracle.MST.create(oracleStore);
    const live = new Map<string, Cid>();
    const liveKeys: string[] = [];
    let counter = 0;
    let ops = 0;
    let batches = 0;
    const valueFor = () => cidForCbor(encode({ $type: 'app.bsky.feed.post', n: counter++ }));
    const toOracle = (cid: Cid) => CID.decode(cid.bytes);

    while (ops < 12_000) {
      const size = 1 + Math.floor(random() * 200);
      const expected = new Map<string, { before: Cid | undefined; after: Cid | undefined }>();
      const before = ours;
      for (let i = 0; i < size; i++, ops++) {
        const r = random();
        const track = (key: string) => {
          if (!expected.has(key)) expected.set(key, { before: live.get(key), after: live.get(key) });
          return expected.get(key)!;
        };
        if (r < 0.55 || liveKeys.length < 50) {
          const key = nextKey();
          if (live.has(key)) continue;
          const value = valueFor();
          const change = track(key);
          ours = ours.add(key, value);
          theirs = await theirs.add(key, toOracle(value));
          live.set(key, value);
          liveKeys.push(key);
          change.after = value;
        } else if (r < 0.75) {
          const key = liveKeys[Math.floor(random() * liveKeys.length)]!;
          const value = valueFor();
          const change = track(key);
          ours = ours.update(key, value);
          theirs = await theirs.update(key, toOracle(value));
          live.set(key, value);
          change.after = value;
        } else {
          const index = Math.floor(random() * liveKeys.length);
          const key = liveKeys[index]!;
          liveKeys[index] = liveKeys[liveKeys.length - 1]!;
          liveKeys.pop();
          track(key);
          ours = ours.delete(key);
          theirs = await theirs.delete(key);
          live.delete(key);
          expected.get(key)!.after = undefined;
        }
      }
      batches++;
      const { root, blocks } = ours.finalize();
      for (const b of blocks.entries()) store.putBlock(b.cid, b.bytes);
      // Persist and reload the oracle's tree each batch, as the reference PDS does per commit.
      const unstored = await theirs.getUnstoredBlocks();
      oracleStore.putMany(unstored.blocks);
      theirs = oracle.MST.load(oracleStore, unstored.root);
      assert.equal(formatCid(root), unstored.root.toString(), `root differs after batch ${batches} (seed ${seed})`);

      // The diff reports exactly the batch's net changes.
      const diff = diffTrees(before, ours, blocks);
      const want = [...expected]
        .filter(
          ([, v]) => !(v.before && v.after && formatCid(v.before) === formatCid(v.after)) && (v.before || v.after),
        )
        .map(([key, v]) => [key, v.before ? (v.after ? 'update' : 'delete') : 'create'])
        .sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
      assert.deepEqual(
        diff.ops.map((o) => [o.key, o.action]),
        want,
        `diff ops differ in batch ${batches}`,
      );

      // Every 10 batches, continue from a tree reloaded from our store (exercises lazy loading).
      if (batches % 10 === 0) ours = Mst.load(store, root);
    }
    assert.ok(ops >= 10_000);
    assert.equal(ours.count(), live.size);
    assert.deepEqual(
      [...ours.list()].map((l) => l.key),
      [...live.keys()].sort(),
    );
  });
});
