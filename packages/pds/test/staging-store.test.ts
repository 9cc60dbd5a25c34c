/**
 * The import staging store: blocks in memory up to its budget, the rest in a scratch file that
 * is gone once the store is disposed; either way every block reads back by CID, and an import
 * staged past the budget verifies to the same repository.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Cid, cidForCbor, formatCid } from '@portage/atproto/cid';
import { generateSigningKey } from '@portage/atproto/crypto';
import { encodeCbor } from '@portage/atproto/data/cbor';
import { exportRepo } from '@portage/atproto/repo/export';
import { importRepo } from '@portage/atproto/repo/import';
import { MemoryBlockStore } from '@portage/atproto/repo/block-store';
import { Repo } from '@portage/atproto/repo/repo';
import { StagingBlockStore } from '../src/migration/staging-store.ts';

const directory = mkdtempSync(join(tmpdir(), 'portage-staging-test-'));
after(() => rmSync(directory, { recursive: true, force: true }));

function block(n: number, size = 100) {
  const bytes = encodeCbor({ n, pad: 'x'.repeat(size) });
  return { cid: cidForCbor(bytes), bytes };
}

describe('import staging store', () => {
  it('keeps blocks in memory within its budget and spills the rest to a file removed on dispose', () => {
    const dir = join(directory, 'spill');
    const store = new StagingBlockStore(dir, { memoryBytes: 1000 });
    const blocks = Array.from({ length: 30 }, (_, i) => block(i));
    for (const b of blocks.slice(0, 5)) store.putBlock(b.cid, b.bytes);
    assert.equal(store.spilled, false, 'five small blocks fit in memory');
    assert.equal(existsSync(dir), false, 'no file while everything fits in memory');
    for (const b of blocks.slice(5)) store.putBlock(b.cid, b.bytes);
    assert.equal(store.spilled, true);
    assert.equal(readdirSync(dir).length, 1);
    for (const b of blocks) assert.deepEqual(store.getBlock(b.cid), b.bytes, `block ${formatCid(b.cid)}`);
    assert.equal(store.hasBlock(block(99).cid), false);
    store.deleteBlock(blocks[0]!.cid);
    store.deleteBlock(blocks[29]!.cid);
    assert.equal(store.getBlock(blocks[0]!.cid), undefined, 'deleted from memory');
    assert.equal(store.getBlock(blocks[29]!.cid), undefined, 'deleted from the file');
    store.dispose();
    assert.deepEqual(readdirSync(dir), []);
  });

  it('tells apart blocks whose CIDs share their first digest bytes', () => {
    const store = new StagingBlockStore(join(directory, 'collide'));
    // CIDs made up to agree on everything but one late digest byte or the codec.
    const cidOf = (codec: number, last: number): Cid => {
      const bytes = new Uint8Array(36);
      bytes.set([1, codec, 0x12, 0x20, 0xab, 0xcd, 0xef, 0x12]);
      bytes[35] = last;
      return { version: 1, codec, digest: { codec: 0x12, contents: bytes.subarray(4) }, bytes };
    };
    const cids = [cidOf(0x71, 1), cidOf(0x71, 2), cidOf(0x55, 1)];
    cids.forEach((cid, i) => store.putBlock(cid, new Uint8Array([i])));
    store.putBlock(cids[1]!, new Uint8Array([9])); // already there: kept as first staged
    cids.forEach((cid, i) => assert.deepEqual(store.getBlock(cid), new Uint8Array([i])));
    assert.equal(store.hasBlock(cidOf(0x71, 3)), false);
    store.deleteBlock(cids[1]!);
    assert.equal(store.getBlock(cids[1]!), undefined);
    assert.deepEqual(store.getBlock(cids[0]!), new Uint8Array([0]));
    assert.deepEqual(store.getBlock(cids[2]!), new Uint8Array([2]));
    store.deleteBlock(cids[2]!);
    store.deleteBlock(cids[0]!);
    assert.equal(
      cids.some((cid) => store.hasBlock(cid)),
      false,
    );
    store.dispose();
  });

  it('holds copies: the chunk a block was read from may be reused', () => {
    const store = new StagingBlockStore(join(directory, 'copies'));
    const b = block(1);
    const chunk = new Uint8Array(b.bytes);
    store.putBlock(b.cid, chunk);
    chunk.fill(0);
    assert.deepEqual(store.getBlock(b.cid), b.bytes);
    store.dispose();
  });

  it('verifies the same repository whether it was staged in memory or mostly on disk', async () => {
    const key = await generateSigningKey();
    const did = 'did:plc:stagingtestaaaaaaaaaaaaa';
    const source = new MemoryBlockStore();
    const result = await Repo.create(
      source,
      did,
      key,
      Array.from({ length: 150 }, (_, i) => ({
        action: 'create' as const,
        collection: 'app.bsky.feed.post',
        rkey: `3k${String(i).padStart(11, 'a')}`,
        record: { $type: 'app.bsky.feed.post', text: `post ${i}`, createdAt: '2024-01-01T00:00:00.000Z' },
      })),
    );
    source.applyCommit(result);
    const repo = result.repo;
    const chunks: Uint8Array[] = [];
    for await (const chunk of exportRepo(source, repo.cid)) chunks.push(chunk);

    const inMemory = new StagingBlockStore(join(directory, 'a'));
    const onDisk = new StagingBlockStore(join(directory, 'b'), { memoryBytes: 2048 });
    try {
      const a = await importRepo(chunks, { did, signingKeys: key.did(), staging: inMemory });
      const b = await importRepo(chunks, { did, signingKeys: key.did(), staging: onDisk });
      assert.equal(inMemory.spilled, false);
      assert.equal(onDisk.spilled, true);
      assert.equal(a.recordCount, 150);
      const paths = (v: typeof a) => [...v.records()].map((r) => `${r.path} ${formatCid(r.cid)}`);
      assert.deepEqual(paths(b), paths(a));
    } finally {
      inMemory.dispose();
      onDisk.dispose();
    }
  });
});
