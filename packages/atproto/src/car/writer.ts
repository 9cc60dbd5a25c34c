/**
 * Streaming CAR v1 writer. Blocks are written in the order given (repository exports put the
 * commit first, then MST nodes and records in tree order, which lets readers verify as they go).
 * Small blocks are packed into chunks of about `chunkSize` bytes so that a socket or file sees a
 * few large writes instead of one per block; a block larger than a chunk is passed through
 * without copying.
 */
import { encode as encodeCbor, toCidLink } from '@atcute/cbor';
import type { Cid } from '../cid.ts';
import { varintLength, writeVarint } from './varint.ts';

export interface CarBlockInput {
  cid: Cid;
  bytes: Uint8Array;
}

export interface WriteCarOptions {
  /** Target size of emitted chunks. Default 64 KiB. */
  chunkSize?: number;
}

export const DEFAULT_CHUNK_SIZE = 64 * 1024;

export function encodeCarHeader(roots: Cid[]): Uint8Array {
  const body = encodeCbor({ version: 1, roots: roots.map(toCidLink) });
  const out = new Uint8Array(varintLength(body.length) + body.length);
  out.set(body, writeVarint(body.length, out, 0));
  return out;
}

/**
 * Packs sections into chunks. `add` returns the chunks completed by this block (usually none),
 * so the same code serves sync and async block sources.
 */
class ChunkPacker {
  private readonly chunkSize: number;
  private chunk: Uint8Array;
  private used: number;

  constructor(chunkSize: number, header: Uint8Array) {
    this.chunkSize = chunkSize;
    this.chunk = new Uint8Array(Math.max(chunkSize, header.length));
    this.chunk.set(header, 0);
    this.used = header.length;
  }

  add(block: CarBlockInput): Uint8Array[] | null {
    const cid = block.cid.bytes;
    const data = block.bytes;
    const sectionLength = cid.length + data.length;
    const total = varintLength(sectionLength) + sectionLength;
    let done: Uint8Array[] | null = null;
    if (this.used + total > this.chunkSize && this.used > 0) done = [this.take()];
    this.used = writeVarint(sectionLength, this.chunk, this.used);
    this.chunk.set(cid, this.used);
    this.used += cid.length;
    if (total <= this.chunkSize) {
      this.chunk.set(data, this.used);
      this.used += data.length;
    } else {
      // Too big to pack: emit the prefix, then the caller's bytes as they are.
      (done ??= []).push(this.take(), data);
    }
    return done;
  }

  /** Hands out the filled part; emitted chunks are never written again, so consumers may keep them. */
  take(): Uint8Array {
    const full = this.chunk.subarray(0, this.used);
    this.chunk = new Uint8Array(this.chunkSize);
    this.used = 0;
    return full;
  }

  get pending(): number {
    return this.used;
  }
}

export async function* writeCar(
  roots: Cid[],
  blocks: AsyncIterable<CarBlockInput> | Iterable<CarBlockInput>,
  options: WriteCarOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const packer = new ChunkPacker(Math.max(1024, options.chunkSize ?? DEFAULT_CHUNK_SIZE), encodeCarHeader(roots));
  if (Symbol.iterator in blocks) {
    // `for await` over a sync iterable costs a promise per block; arrays are the common case.
    for (const block of blocks) {
      const done = packer.add(block);
      if (done !== null) yield* done;
    }
  } else {
    for await (const block of blocks) {
      const done = packer.add(block);
      if (done !== null) yield* done;
    }
  }
  if (packer.pending > 0) yield packer.take();
}

/** Collects a whole CAR in memory (for small CARs: commit proofs, tests). */
export function writeCarBytes(
  roots: Cid[],
  blocks: AsyncIterable<CarBlockInput> | Iterable<CarBlockInput>,
): Promise<Uint8Array> {
  return collectBytes(writeCar(roots, blocks));
}

/** Joins a stream of chunks into one array (only for what is known to be small). */
export async function collectBytes(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of chunks) {
    parts.push(chunk);
    length += chunk.length;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Adapts a chunk iterable (e.g. writeCar's) to a ReadableStream that pulls on demand. */
export function toReadableStream(chunks: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const iterator = chunks[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const result = await iterator.next();
      if (result.done) controller.close();
      else controller.enqueue(result.value);
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}
