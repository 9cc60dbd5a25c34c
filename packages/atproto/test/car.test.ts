import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encode as encodeCbor } from '@atcute/cbor';
import { BlockMap, blocksToCarFile, readCarWithRoot } from '@atproto/repo';
import {
  CarError,
  type CarBlock,
  readCar,
  readCarBytes,
  toReadableStream,
  writeCar,
  writeCarBytes,
} from '../src/car.ts';
import { type Cid, cidForCbor, cidForRaw, cidFromBytes, formatCid } from '../src/cid.ts';

function cborBlock(value: unknown): CarBlock {
  const bytes = encodeCbor(value);
  return { cid: cidForCbor(bytes), bytes };
}

function rawBlock(bytes: Uint8Array): CarBlock {
  return { cid: cidForRaw(bytes), bytes };
}

const VALUES = [
  { $type: 'app.bsky.feed.post', text: 'hello', createdAt: '2024-01-01T00:00:00.000Z' },
  { $type: 'app.bsky.actor.profile', displayName: 'Alice', description: 'x'.repeat(300) },
  { list: [1, 2, 3, { nested: true }], n: -42 },
];

/** Header + 4 blocks; block 1 is larger than 127 bytes so its length varint takes two bytes. */
function smallCarBlocks(): CarBlock[] {
  return [...VALUES.map(cborBlock), rawBlock(new Uint8Array([1, 2, 3, 4, 5]))];
}

async function smallCar(): Promise<{ bytes: Uint8Array; blocks: CarBlock[]; root: Cid }> {
  const blocks = smallCarBlocks();
  const root = blocks[0]!.cid;
  return { bytes: await writeCarBytes([root], blocks), blocks, root };
}

/** A stream holding `bytes` that records whether its reader cancelled it. */
function cancellableSource(bytes: Uint8Array): { stream: ReadableStream<Uint8Array>; wasCancelled: () => boolean } {
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, wasCancelled: () => cancelled };
}

async function collect(source: Parameters<typeof readCar>[0], options?: Parameters<typeof readCar>[1]) {
  const car = await readCar(source, options);
  const blocks: CarBlock[] = [];
  for await (const block of car.blocks) blocks.push(block);
  return { roots: car.roots, blocks };
}

/** Like collect, through forEachBlock. */
async function collectEach(source: Parameters<typeof readCar>[0], options?: Parameters<typeof readCar>[1]) {
  const car = await readCar(source, options);
  const blocks: CarBlock[] = [];
  await car.forEachBlock((block) => blocks.push(block));
  return { roots: car.roots, blocks };
}

function assertSameBlocks(actual: CarBlock[], expected: CarBlock[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((block, i) => {
    assert.equal(formatCid(block.cid), formatCid(expected[i]!.cid), `cid of block ${i}`);
    assert.deepEqual(block.bytes, expected[i]!.bytes, `bytes of block ${i}`);
  });
}

/** Expects the read to fail with a CarError carrying this code (and optionally section/index/offset). */
async function assertCarError(
  source: Parameters<typeof readCar>[0],
  expected: { code: string; section?: string; blockIndex?: number | null; offset?: number; message?: RegExp },
  options?: Parameters<typeof readCar>[1],
): Promise<void> {
  const check = (err: unknown) => {
    assert.ok(err instanceof CarError, `expected CarError, got ${err}`);
    assert.equal(err.code, expected.code, err.message);
    if (expected.section !== undefined) assert.equal(err.section, expected.section, err.message);
    if (expected.blockIndex !== undefined) assert.equal(err.blockIndex, expected.blockIndex, err.message);
    if (expected.offset !== undefined) assert.equal(err.offset, expected.offset, err.message);
    assert.match(err.message, /at byte offset \d+/);
    if (expected.message) assert.match(err.message, expected.message);
    return true;
  };
  await assert.rejects(collect(source, options), check);
  // forEachBlock reads the same way and fails the same way (array sources can be read again).
  if (Array.isArray(source)) await assert.rejects(collectEach(source, options), check);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Byte offsets of each section in a CAR written by writeCar (all varints here are minimal). */
function layout(bytes: Uint8Array): { start: number; lengthBytes: number; length: number }[] {
  const sections = [];
  let at = 0;
  while (at < bytes.length) {
    let length = 0;
    let scale = 1;
    let n = 0;
    for (;;) {
      const b = bytes[at + n]!;
      length += (b & 0x7f) * scale;
      scale *= 128;
      n++;
      if ((b & 0x80) === 0) break;
    }
    sections.push({ start: at, lengthBytes: n, length });
    at += n + length;
  }
  return sections;
}

describe('CAR round trip', () => {
  test('write then read gives the same roots and blocks', async () => {
    const blocks = [...smallCarBlocks(), rawBlock(new Uint8Array(200_000).fill(7))];
    const roots = [blocks[0]!.cid, blocks[1]!.cid];
    const car = await readCarBytes(await writeCarBytes(roots, blocks));
    assert.deepEqual(car.roots.map(formatCid), roots.map(formatCid));
    assertSameBlocks(car.blocks, blocks);
  });

  test('async and sync block sources produce the same bytes', async () => {
    const blocks = [...smallCarBlocks(), rawBlock(new Uint8Array(100_000).fill(3)), ...smallCarBlocks()];
    async function* asyncBlocks() {
      for (const block of blocks) yield block;
    }
    const fromArray = await writeCarBytes([blocks[0]!.cid], blocks);
    assert.deepEqual(await writeCarBytes([blocks[0]!.cid], asyncBlocks()), fromArray);
    assertSameBlocks((await readCarBytes(fromArray)).blocks, blocks);
  });

  test('an empty root list is allowed unless requireRoot', async () => {
    const bytes = await writeCarBytes([], smallCarBlocks());
    assert.deepEqual((await readCarBytes(bytes)).roots, []);
    await assertCarError([bytes], { code: 'CarBadHeader', message: /no root/ }, { requireRoot: true });
  });

  test('a Uint8Array is read as one chunk, not as an iterable of numbers', async () => {
    const { bytes, blocks } = await smallCar();
    assertSameBlocks((await collect(bytes)).blocks, blocks);
  });

  test('a ReadableStream source, through toReadableStream', async () => {
    const blocks = smallCarBlocks();
    const stream = toReadableStream(writeCar([blocks[0]!.cid], blocks));
    const car = await collect(stream);
    assertSameBlocks(car.blocks, blocks);
  });
});

describe('CAR compatibility with @atproto/repo', () => {
  test('same bytes as blocksToCarFile for the same blocks', async () => {
    const map = new BlockMap();
    const referenceCids = [];
    for (const value of VALUES) referenceCids.push(await map.add(value));
    const ours = VALUES.map(cborBlock);
    assert.deepEqual(
      ours.map((b) => formatCid(b.cid)),
      referenceCids.map((c) => c.toString()),
    );
    const reference = await blocksToCarFile(referenceCids[0]!, map);
    const mine = await writeCarBytes([ours[0]!.cid], ours);
    assert.deepEqual(mine, reference);
  });

  test('the reference reads and verifies ours', async () => {
    const { bytes, blocks, root } = await smallCar();
    const read = await readCarWithRoot(bytes);
    assert.equal(read.root.toString(), formatCid(root));
    assert.equal(read.blocks.size, blocks.length);
  });
});

describe('CAR stream chunking', () => {
  test('a split at every byte position reads the same', async () => {
    const { bytes, blocks } = await smallCar();
    for (let i = 1; i < bytes.length; i++) {
      const car = await collect([bytes.subarray(0, i), bytes.subarray(i)]);
      assertSameBlocks(car.blocks, blocks);
    }
  });

  test('one byte per chunk, with empty chunks in between', async () => {
    const { bytes, blocks } = await smallCar();
    async function* bytewise() {
      for (let i = 0; i < bytes.length; i++) {
        yield new Uint8Array(0);
        yield bytes.subarray(i, i + 1);
      }
    }
    assertSameBlocks((await collect(bytewise())).blocks, blocks);
    assertSameBlocks((await collectEach(bytewise())).blocks, blocks);
  });

  test('forEachBlock hands over the same blocks as iterating, across any chunking', async () => {
    const blocks = [...smallCarBlocks(), rawBlock(new Uint8Array(70_000).fill(5)), ...smallCarBlocks()];
    const bytes = await writeCarBytes([blocks[0]!.cid], blocks);
    for (const size of [1, 7, 36, 37, 100, 4096, bytes.length]) {
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
      assertSameBlocks((await collectEach(chunks)).blocks, blocks);
    }
    const car = await readCar(bytes);
    await car.forEachBlock(() => {});
    await assert.rejects(
      car.forEachBlock(() => {}),
      /only once/,
    );
  });

  test('an error thrown by the forEachBlock callback stops the read and releases the source', async () => {
    const { stream, wasCancelled } = cancellableSource((await smallCar()).bytes);
    const car = await readCar(stream);
    let seen = 0;
    await assert.rejects(
      car.forEachBlock(() => {
        if (++seen === 2) throw new Error('enough');
      }),
      /enough/,
    );
    assert.equal(seen, 2);
    assert.equal(wasCancelled(), true);
  });

  test('blocks come out before the source is exhausted (nothing is buffered ahead)', async () => {
    const blocks = Array.from({ length: 1000 }, (_, i) => cborBlock({ i, pad: 'p'.repeat(100) }));
    const chunks: Uint8Array[] = [];
    for await (const chunk of writeCar([blocks[0]!.cid], blocks, { chunkSize: 1024 })) chunks.push(chunk);
    let pulled = 0;
    async function* source() {
      for (const chunk of chunks) {
        pulled++;
        yield chunk;
      }
    }
    const car = await readCar(source());
    let seen = 0;
    for await (const _ of car.blocks) {
      if (++seen === 10) break;
    }
    assert.ok(pulled <= 3, `pulled ${pulled} of ${chunks.length} chunks to read 10 blocks`);
  });

  test('breaking out early cancels a ReadableStream source', async () => {
    const { stream, wasCancelled } = cancellableSource((await smallCar()).bytes);
    const car = await readCar(stream);
    for await (const _ of car.blocks) break;
    assert.equal(wasCancelled(), true);
  });
});

describe('CAR reader rejects broken input with a positioned error', () => {
  test('empty stream', async () => {
    await assertCarError([], { code: 'CarTruncated', section: 'header length', blockIndex: null, offset: 0 });
  });

  test('truncated in the header length varint', async () => {
    await assertCarError([new Uint8Array([0x80])], { code: 'CarTruncated', section: 'header length', offset: 1 });
  });

  test('truncated in the header', async () => {
    const { bytes } = await smallCar();
    await assertCarError([bytes.subarray(0, 10)], {
      code: 'CarTruncated',
      section: 'header',
      blockIndex: null,
      offset: 10,
    });
  });

  test('truncated in a block length varint', async () => {
    const { bytes } = await smallCar();
    const block1 = layout(bytes)[2]!; // header is section 0
    assert.equal(block1.lengthBytes, 2);
    const cut = block1.start + 1;
    await assertCarError([bytes.subarray(0, cut)], {
      code: 'CarTruncated',
      section: 'block length',
      blockIndex: 1,
      offset: cut,
    });
  });

  test('truncated in a block CID', async () => {
    const { bytes } = await smallCar();
    const block2 = layout(bytes)[3]!;
    const cut = block2.start + block2.lengthBytes + 20;
    await assertCarError([bytes.subarray(0, cut)], {
      code: 'CarTruncated',
      section: 'block CID',
      blockIndex: 2,
      offset: cut,
      message: /16 bytes short/,
    });
  });

  test('truncated in block data', async () => {
    const { bytes } = await smallCar();
    const cut = bytes.length - 1;
    await assertCarError([bytes.subarray(0, cut)], {
      code: 'CarTruncated',
      section: 'block data',
      blockIndex: 3,
      offset: cut,
    });
  });

  test('block bytes that do not match the CID', async () => {
    const { bytes } = await smallCar();
    const corrupt = bytes.slice();
    const block1 = layout(bytes)[2]!;
    corrupt[block1.start + block1.lengthBytes + 36 + 5]! ^= 1;
    await assertCarError([corrupt], {
      code: 'CarHashMismatch',
      blockIndex: 1,
      offset: block1.start + block1.lengthBytes + 36,
    });
  });

  test('headers that are not { version: 1, roots: [...] }', async () => {
    const withHeader = (value: unknown) => {
      const body = encodeCbor(value);
      return concat(new Uint8Array([body.length]), body);
    };
    const { root } = await smallCar();
    await assertCarError([withHeader({ version: 2, roots: [] })], { code: 'CarBadHeader', message: /version 2/ });
    await assertCarError([withHeader({ version: 1 })], { code: 'CarBadHeader', message: /roots/ });
    await assertCarError([withHeader([1, 2])], { code: 'CarBadHeader', message: /not a map/ });
    await assertCarError([withHeader({ version: 1, roots: [formatCid(root)] })], {
      code: 'CarBadHeader',
      message: /root 0/,
    });
    await assertCarError([new Uint8Array([3, 0xff, 0xff, 0xff])], { code: 'CarBadHeader', message: /DAG-CBOR/ });
    await assertCarError([new Uint8Array([0])], { code: 'CarBadHeader', message: /zero/ });
  });

  test('non-minimal length varints', async () => {
    const { bytes } = await smallCar();
    const [header, block0] = layout(bytes);
    // Header length n (< 128) written as two bytes: n|0x80, 0x00.
    const headerLength = bytes[0]!;
    const badHeader = concat(new Uint8Array([headerLength | 0x80, 0]), bytes.subarray(1));
    await assertCarError([badHeader], { code: 'CarVarintNotMinimal', section: 'header length', offset: 0 });
    const b0 = block0!;
    assert.equal(b0.lengthBytes, 1);
    const badBlock = concat(
      bytes.subarray(0, b0.start),
      new Uint8Array([bytes[b0.start]! | 0x80, 0]),
      bytes.subarray(b0.start + 1),
    );
    await assertCarError([badBlock], {
      code: 'CarVarintNotMinimal',
      section: 'block length',
      blockIndex: 0,
      offset: header!.length + 1,
    });
    // Also when the varint is split across chunks.
    const split = b0.start + 1;
    await assertCarError([badBlock.subarray(0, split), badBlock.subarray(split)], {
      code: 'CarVarintNotMinimal',
      blockIndex: 0,
    });
  });

  test('varints that never end', async () => {
    const { bytes } = await smallCar();
    const start = layout(bytes)[1]!.start;
    const bad = concat(bytes.subarray(0, start), new Uint8Array(12).fill(0xff));
    await assertCarError([bad], { code: 'CarVarintTooLong', section: 'block length', blockIndex: 0, offset: start });
  });

  test('oversized blocks are refused before their bytes are read', async () => {
    const { bytes } = await smallCar();
    const start = layout(bytes)[1]!.start;
    // Section length 3 MiB, and no data after it: the size check must come before any read.
    const threeMiB = 3 * 1024 * 1024;
    const varint = new Uint8Array([0x80, 0x80, 0x80 | ((threeMiB >> 14) % 128), threeMiB >> 21]);
    assert.equal(varint[3], 1);
    await assertCarError([concat(bytes.subarray(0, start), varint)], {
      code: 'CarBlockTooLarge',
      blockIndex: 0,
      offset: start,
      message: /3145728 bytes/,
    });
    await assertCarError([bytes], { code: 'CarBlockTooLarge', blockIndex: 1 }, { maxBlockSize: 200 });
    await assertCarError([bytes], { code: 'CarHeaderTooLarge' }, { maxHeaderSize: 10 });
  });

  test('CIDs atproto does not use', async () => {
    const { bytes } = await smallCar();
    const b0 = layout(bytes)[1]!;
    const cidAt = b0.start + b0.lengthBytes;
    const withByte = (index: number, value: number) => {
      const copy = bytes.slice();
      copy[cidAt + index] = value;
      return copy;
    };
    await assertCarError([withByte(0, 0x12)], { code: 'CarBadCid', message: /version/, blockIndex: 0, offset: cidAt });
    await assertCarError([withByte(1, 0x70)], { code: 'CarBadCid', message: /codec 0x70/ });
    await assertCarError([withByte(2, 0x13)], { code: 'CarBadCid', message: /SHA-256/ });
  });

  test('sections too short for a CID', async () => {
    const { bytes } = await smallCar();
    const start = layout(bytes)[1]!.start;
    await assertCarError([concat(bytes.subarray(0, start), new Uint8Array([5, 1, 2, 3, 4, 5]))], {
      code: 'CarBadSection',
    });
  });

  test('a source yielding non-bytes', async () => {
    await assertCarError(['not bytes'] as unknown as Uint8Array[], { code: 'CarBadSource' });
  });
});

describe('CAR writer', () => {
  test('packs small blocks into chunks of about chunkSize and passes large blocks through', async () => {
    const small = Array.from({ length: 500 }, (_, i) => cborBlock({ i, pad: 'q'.repeat(200) }));
    const big = rawBlock(new Uint8Array(100_000).fill(1));
    const blocks = [...small.slice(0, 250), big, ...small.slice(250)];
    const chunks: Uint8Array[] = [];
    for await (const chunk of writeCar([small[0]!.cid], blocks, { chunkSize: 16 * 1024 })) chunks.push(chunk);
    const total = chunks.reduce((n, c) => n + c.length, 0);
    assert.ok(
      chunks.some((c) => c === big.bytes),
      'large block is yielded without a copy',
    );
    for (const chunk of chunks)
      if (chunk !== big.bytes) assert.ok(chunk.length <= 16 * 1024, `chunk of ${chunk.length}`);
    assert.ok(chunks.length < 20, `${chunks.length} chunks for ${total} bytes`);
    assertSameBlocks((await readCarBytes(concat(...chunks))).blocks, blocks);
  });

  test('accepts CIDs decoded elsewhere (binary form is what is written)', async () => {
    const block = cborBlock({ a: 1 });
    const copy = { cid: cidFromBytes(block.cid.bytes.slice()), bytes: block.bytes };
    assert.deepEqual(await writeCarBytes([copy.cid], [copy]), await writeCarBytes([block.cid], [block]));
  });
});
