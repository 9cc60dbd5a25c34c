import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cidForCbor, cidForRaw, formatCid, parseCid } from '../src/cid.ts';
import { asciiKeyHeight, commonPrefixLength, findMstKeyProblem, keyHeight } from '../src/mst/keys.ts';
import { decodeNode, decodeNodeGeneral, encodeNode } from '../src/mst/node.ts';
import { Mst } from '../src/mst/tree.ts';
import { MemoryBlockStore } from '../src/repo/block-store.ts';
import { seededRandom } from '../../../test/support/seeded-random.ts';

const fixtures = join(import.meta.dirname, '../../../test/fixtures/interop');
const readJson = (path: string) => JSON.parse(readFileSync(join(fixtures, path), 'utf8'));

function build(keys: string[], value = parseCid('bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454')) {
  let tree = Mst.create(new MemoryBlockStore());
  for (const key of keys) tree = tree.add(key, value);
  return tree;
}

describe('MST key rules (interop vectors)', () => {
  const heights = readJson('mst/key_heights.json') as { key: string; height: number }[];
  it(`key heights: ${heights.length} vectors`, () => {
    for (const v of heights) assert.equal(keyHeight(v.key), v.height, v.key);
    for (const v of heights.filter((h) => [...h.key].every((c) => c.charCodeAt(0) < 0x80))) {
      assert.equal(asciiKeyHeight(v.key), v.height, v.key);
    }
  });
  it('the ASCII key height (hashed in place up to one SHA-256 block) agrees with the full hash at every length', () => {
    const random = seededRandom(7);
    for (let length = 0; length <= 80; length++) {
      for (let n = 0; n < 40; n++) {
        const key = Array.from({ length }, () => String.fromCharCode(32 + Math.floor(random() * 95))).join('');
        assert.equal(asciiKeyHeight(key), keyHeight(key), JSON.stringify(key));
      }
    }
    // Keys picked for tall heights (many leading zero bits), where the count runs past the first byte.
    for (const v of heights.filter((h) => h.height >= 4)) assert.equal(asciiKeyHeight(v.key), v.height);
  });
  const prefixes = readJson('mst/common_prefix.json') as { left: string; right: string; len: number }[];
  it(`common prefix: ${prefixes.length} vectors`, () => {
    for (const v of prefixes) assert.equal(commonPrefixLength(v.left, v.right), v.len, `${v.left}|${v.right}`);
  });
  it('example keys sit at the height their name says', () => {
    const lines = readFileSync(join(fixtures, 'mst/example_keys.txt'), 'utf8').split('\n').filter(Boolean);
    for (const key of lines) assert.equal(keyHeight(key), Number(key[1]), key);
  });
  it('accepts <collection>/<rkey> and rejects everything else', () => {
    for (const ok of ['app.bsky.feed.post/3jzfcijpj2z2a', 'A0/374913', 'com.example/self', 'a/b:c~d_e-f.g']) {
      assert.equal(findMstKeyProblem(ok), null, ok);
    }
    for (const bad of ['', 'nokey', '/rkey', 'coll/', 'a/b/c', 'a/b c', 'a/é', `a/${'x'.repeat(1030)}`]) {
      assert.notEqual(findMstKeyProblem(bad), null, bad);
    }
    assert.throws(() => build(['a/b/c']), { code: 'InvalidKey' });
  });
});

describe('MST roots (interop root vectors)', () => {
  const vectors = readJson('mst/root-vectors.json') as {
    leafCid: string;
    cases: { name: string; keys: string[]; root: string; then?: { add?: string[]; delete?: string[]; root: string } }[];
  };
  const leaf = parseCid(vectors.leafCid);
  for (const c of vectors.cases) {
    it(c.name, () => {
      let tree = build(c.keys, leaf);
      assert.equal(formatCid(tree.rootCid()), c.root);
      // Insertion order must not matter.
      assert.equal(formatCid(build([...c.keys].reverse(), leaf).rootCid()), c.root);
      if (c.then) {
        for (const key of c.then.add ?? []) tree = tree.add(key, leaf);
        for (const key of c.then.delete ?? []) tree = tree.delete(key);
        assert.equal(formatCid(tree.rootCid()), c.then.root);
      }
    });
  }
});

describe('MST operations', () => {
  const store = new MemoryBlockStore();
  const value = (n: number) => cidForCbor(new Uint8Array([0xa1, 0x61, 0x6e, n & 0x17]));
  const keys = Array.from({ length: 500 }, (_, i) => `com.example.coll${i % 3}/k${String(i * 7919).padStart(6, '0')}`);

  it('add, get, update, delete, and reload from the store', () => {
    let tree = Mst.create(store);
    for (const [i, key] of keys.entries()) tree = tree.add(key, value(i));
    const { root, blocks } = tree.finalize();
    for (const b of blocks.entries()) store.putBlock(b.cid, b.bytes);
    const loaded = Mst.load(store, root);
    for (const [i, key] of keys.entries()) assert.equal(formatCid(loaded.get(key)!), formatCid(value(i)));
    assert.equal(loaded.get('com.example.coll0/nope'), null);
    assert.throws(() => loaded.add(keys[0]!, value(1)), { code: 'RecordExists' });
    assert.throws(() => loaded.update('com.example.coll0/nope', value(1)), { code: 'RecordNotFound' });
    assert.throws(() => loaded.delete('com.example.coll0/nope'), { code: 'RecordNotFound' });
    const updated = loaded.update(keys[10]!, value(99));
    assert.equal(formatCid(updated.get(keys[10]!)!), formatCid(value(99)));
    assert.equal(formatCid(loaded.get(keys[10]!)!), formatCid(value(10)), 'old tree unchanged');
    let emptied = loaded;
    for (const key of keys) emptied = emptied.delete(key);
    assert.equal(formatCid(emptied.rootCid()), 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm');
  });

  it('lists in order, by range, by collection, in reverse', () => {
    let tree = Mst.create(store);
    for (const [i, key] of keys.entries()) tree = tree.add(key, value(i));
    const sorted = [...keys].sort();
    assert.deepEqual(
      [...tree.list()].map((l) => l.key),
      sorted,
    );
    assert.deepEqual(
      [...tree.list({ reverse: true })].map((l) => l.key),
      [...sorted].reverse(),
    );
    const lo = sorted[100]!;
    const hi = sorted[300]!;
    assert.deepEqual(
      [...tree.list({ after: lo, before: hi })].map((l) => l.key),
      sorted.slice(101, 300),
    );
    assert.deepEqual(
      [...tree.list({ after: lo, before: hi, reverse: true })].map((l) => l.key),
      sorted.slice(101, 300).reverse(),
    );
    const coll1 = sorted.filter((k) => k.startsWith('com.example.coll1/'));
    assert.deepEqual(
      [...tree.listCollection('com.example.coll1')].map((l) => l.key),
      coll1,
    );
    const cursor = coll1[50]!.split('/')[1];
    assert.deepEqual(
      [...tree.listCollection('com.example.coll1', { cursor })].map((l) => l.key),
      coll1.slice(51),
    );
    assert.deepEqual(
      [...tree.listCollection('com.example.coll1', { cursor, reverse: true })].map((l) => l.key),
      coll1.slice(0, 50).reverse(),
    );
    assert.deepEqual([...tree.listCollection('com.example.coll')], []);
  });

  it('encodes nodes byte-identically to the generic DAG-CBOR encoder', async () => {
    const { encode, toBytes, toCidLink } = await import('@atcute/cbor');
    const v = value(1);
    const content = {
      left: v,
      keys: ['a/bc', 'a/bd', 'a/x'.padEnd(300, 'y')],
      values: [v, v, v],
      rights: [null, v, null],
    };
    const generic = encode({
      l: toCidLink(v),
      e: [
        { p: 0, k: toBytes(new TextEncoder().encode('a/bc')), v: toCidLink(v), t: null },
        { p: 3, k: toBytes(new TextEncoder().encode('d')), v: toCidLink(v), t: toCidLink(v) },
        { p: 2, k: toBytes(new TextEncoder().encode(content.keys[2]!.slice(2))), v: toCidLink(v), t: null },
      ],
    });
    assert.deepEqual(encodeNode(content), generic);
    assert.deepEqual(decodeNode(generic, true).keys, content.keys);
  });

  it('decodes every node, and every corruption of one, exactly as the general decoder does', (t) => {
    const v = value(1);
    const raw = cidForRaw(new TextEncoder().encode('raw'));
    const nodes = [
      encodeNode({ left: null, keys: [], values: [], rights: [] }),
      encodeNode({ left: v, keys: ['a/b'], values: [raw], rights: [null] }),
      encodeNode({
        left: null,
        keys: [
          'com.example.a/1',
          'com.example.a/2',
          'com.example.b/'.padEnd(40, 'x'),
          'com.example.c/'.padEnd(300, 'z'),
        ],
        values: [v, v, v, v],
        rights: [v, null, v, null],
      }),
    ];
    const outcome = (decode: () => unknown) => {
      try {
        return { value: decode() };
      } catch (err) {
        return { error: `${(err as { code?: string }).code}: ${(err as Error).message}` };
      }
    };
    let compared = 0;
    for (const node of nodes) {
      const variants: Uint8Array[] = [node];
      for (let n = 0; n < node.length; n++) variants.push(node.subarray(0, n));
      for (let i = 0; i < Math.min(node.length, 200); i++) {
        for (const b of [0x00, 0x01, 0x18, 0x19, 0x20, 0x2f, 0x55, 0x61, 0x7f, 0xa3, 0xd8, 0xf6, 0xff]) {
          if (node[i] === b) continue;
          const variant = node.slice();
          variant[i] = b;
          variants.push(variant);
        }
      }
      for (const variant of variants) {
        for (const strict of [false, true]) {
          assert.deepEqual(
            outcome(() => decodeNode(variant, strict)),
            outcome(() => decodeNodeGeneral(variant, strict)),
            Buffer.from(variant).toString('hex'),
          );
          compared++;
        }
      }
    }
    t.diagnostic(`node encodings compared with the general decoder: ${compared}`);
  });
});
