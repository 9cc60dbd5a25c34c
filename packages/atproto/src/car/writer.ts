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

export async function* writeCar(
  roots: Cid[],
  blocks: AsyncIterable<CarBlockInput> | Iterable<CarBlockInput>,
  options: WriteCarOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const chunkSize = Math.max(1024, options.chunkSize ?? DEFAULT_CHUNK_SIZE);
  const header = encodeCarHeader(roots);
  let chunk = new Uint8Array(Math.max(chunkSize, header.length));
  chunk.set(header, 0);
  let used = header.length;
  for await (const block of blocks) {
    const cid = block.cid.bytes;
    const data = block.bytes;
    const sectionLength = cid.length + data.length;
    const prefixLength = varintLength(sectionLength) + cid.length;
    const total = prefixLength + sectionLength - cid.length;
    if (used + total > chunkSize && used > 0) {
      // Emitted chunks are never written to again, so consumers may keep them.
      yield chunk.subarray(0, used);
      chunk = new Uint8Array(chunkSize);
      used = 0;
    }
    used = writeVarint(sectionLength, chunk, used);
    chunk.set(cid, used);
    used += cid.length;
    if (total <= chunkSize) {
      chunk.set(data, used);
      used += data.length;
    } else {
      yield chunk.subarray(0, used);
      yield data;
      chunk = new Uint8Array(chunkSize);
      used = 0;
    }
  }
  if (used > 0) yield chunk.subarray(0, used);
}

/** Collects a whole CAR in memory (for small CARs: commit proofs, tests). */
export async function writeCarBytes(
  roots: Cid[],
  blocks: AsyncIterable<CarBlockInput> | Iterable<CarBlockInput>,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of writeCar(roots, blocks)) {
    chunks.push(chunk);
    length += chunk.length;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
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
