/**
 * getRepo's CAR framing, on a blocks table filled directly: blocks of every section-length
 * class (one-, two-, three- and four-byte varints), runs of large blocks that force pages to
 * shrink, and `since` selecting by rev. The reader checks every section's CID against its bytes,
 * so a framing error anywhere fails the test.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readCarBytes } from '@portage/atproto/car';
import { type Cid, cidForRaw, formatCid } from '@portage/atproto/cid';
import { openActorDb, type SqliteDb } from '../src/actor-store/db.ts';
import { openSnapshot, snapshotCar } from '../src/actor-store/snapshot-car.ts';

async function collect(stream: AsyncIterable<Uint8Array>): Promise<{ bytes: Uint8Array; chunks: number[] }> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return { bytes: Buffer.concat(chunks), chunks: chunks.map((c) => c.length) };
}

interface Block {
  cid: Cid;
  bytes: Uint8Array;
  rev: string;
}

describe('snapshot CAR export', () => {
  let dir: string;
  let path: string;
  let db: SqliteDb;
  const blocks: Block[] = [];
  let commit: Block;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'portage-snapshot-car-'));
    path = join(dir, 'store.sqlite');
    db = openActorDb(path);
    const sizes: number[] = [];
    // Sections (36-byte CID + bytes) below 128, below 16384, below 2 MiB, and above.
    for (let i = 0; i < 3000; i++) sizes.push(4 + (i % 88));
    for (let i = 0; i < 500; i++) sizes.push(92 + ((i * 37) % 16000));
    for (let i = 0; i < 40; i++) sizes.push(16384 + i * 25_000);
    sizes.push(2 * 1024 * 1024 + 5, 3 * 1024 * 1024);
    const insert = db.prepare('INSERT INTO repo_block (cid, repo_rev, size, content) VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      sizes.forEach((size, i) => {
        const bytes = randomBytes(size);
        bytes.writeUInt32BE(i); // distinct content, so distinct CIDs
        const block = { cid: cidForRaw(bytes), bytes, rev: `rev${String(i % 7)}` };
        insert.run(block.cid.bytes, block.rev, size, bytes);
        blocks.push(block);
      });
    })();
    commit = blocks[1234]!;
  });
  after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function exportAndRead(since?: string) {
    const { bytes, chunks } = await collect(snapshotCar(openSnapshot(path), commit.cid, since));
    const car = await readCarBytes(bytes, { maxBlockSize: 4 * 1024 * 1024 });
    return { car, chunks };
  }

  it('holds the commit first and every other block exactly once, in bounded chunks', async () => {
    const { car, chunks } = await exportAndRead();
    assert.deepEqual(car.roots.map(formatCid), [formatCid(commit.cid)]);
    assert.equal(formatCid(car.blocks[0]!.cid), formatCid(commit.cid));
    const exported = new Map(car.blocks.map((b) => [formatCid(b.cid), Buffer.from(b.bytes)]));
    assert.equal(exported.size, car.blocks.length, 'no block twice');
    assert.equal(exported.size, blocks.length);
    for (const block of blocks) assert.deepEqual(exported.get(formatCid(block.cid)), Buffer.from(block.bytes));
    // Pages aim at 512 KB; only a block larger than that budget alone makes a chunk over 1.5 MB.
    const oversized = chunks.filter((size) => size > 1.5 * 1024 * 1024);
    assert.ok(oversized.length <= 2, `chunks over budget: ${oversized.join(', ')}`);
    for (const size of oversized) assert.ok(size <= 3 * 1024 * 1024 + 64, `chunk ${size}`);
    assert.ok(chunks.length > 10, `expected many pages, got ${chunks.length}`);
  });

  it('with since, holds the commit and only the blocks of later revs', async () => {
    const { car } = await exportAndRead('rev4');
    const expected = blocks.filter((b) => b.rev > 'rev4' && b !== commit).map((b) => formatCid(b.cid));
    assert.equal(formatCid(car.blocks[0]!.cid), formatCid(commit.cid));
    assert.deepEqual(
      car.blocks
        .slice(1)
        .map((b) => formatCid(b.cid))
        .sort(),
      expected.sort(),
    );
  });

  it('reads one snapshot while the table changes underneath', async () => {
    const stream = snapshotCar(openSnapshot(path), commit.cid, undefined)[Symbol.asyncIterator]();
    const first = await stream.next();
    const added = randomBytes(50);
    db.prepare('INSERT INTO repo_block (cid, repo_rev, size, content) VALUES (?, ?, ?, ?)').run(
      cidForRaw(added).bytes,
      'rev9',
      added.length,
      added,
    );
    const chunks = [first.value as Uint8Array];
    for (let next = await stream.next(); !next.done; next = await stream.next()) chunks.push(next.value);
    const car = await readCarBytes(Buffer.concat(chunks), { maxBlockSize: 4 * 1024 * 1024 });
    assert.equal(car.blocks.length, blocks.length);
    db.prepare('DELETE FROM repo_block WHERE cid = ?').run(cidForRaw(added).bytes);
  });
});
