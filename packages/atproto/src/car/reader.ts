/**
 * Streaming CAR v1 reader (https://ipld.io/specs/transport/car/carv1/).
 *
 * A CAR is `varint(len) header` followed by sections `varint(len) cid block`. The reader pulls
 * chunks from the source only as it needs them and holds at most one block (plus one source
 * chunk), so memory is bounded by the largest block, never by the archive. Chunks may split a
 * varint, a CID or a block anywhere. Every block is checked against its CID before it is handed
 * out; any problem stops the stream with a CarError that names the section, the block index and
 * the byte offset.
 *
 * Blocks are views into the source's chunks when they sit inside one chunk (no copy), and fresh
 * arrays when they span chunks. Consumers must treat them as read-only.
 *
 * A section that sits inside the current chunk (nearly all of them) is read in one synchronous
 * step; only one that spans chunks is read part by part with awaits. `forEachBlock` builds on
 * that: a repository of 40,000 blocks costs a promise per source chunk, not per block.
 */
import { decode as decodeCbor, fromCidLink, isCidLink } from '@atcute/cbor';
import { ATPROTO_CID_LENGTH, atprotoCidProblem, type Cid, cidFromCheckedBytes, cidMatches } from '../cid.ts';
import { CarError, type CarErrorCode, type CarSection } from './errors.ts';

export interface CarBlock {
  cid: Cid;
  bytes: Uint8Array;
}

export interface ReadCarOptions {
  /** Largest section (CID + block bytes) accepted. Default DEFAULT_MAX_BLOCK_SIZE. */
  maxBlockSize?: number;
  /** Largest header accepted. Default DEFAULT_MAX_HEADER_SIZE. */
  maxHeaderSize?: number;
  /** Fail when the header lists no root (repository exports must have one; getBlocks CARs have none). */
  requireRoot?: boolean;
}

export interface CarReader {
  roots: Cid[];
  /** The blocks, in stream order. Single use: iterate once. Breaking out early releases the source. */
  blocks: AsyncIterable<CarBlock>;
  /**
   * The same blocks handed to `onBlock` one by one, instead of `blocks` (use one or the other,
   * once): for a consumer that takes each block synchronously, this costs no promise per block,
   * only one per source chunk. Resolves after the last block; rejects with the error that stops
   * the stream, or with whatever `onBlock` throws (the source is released either way).
   */
  forEachBlock(onBlock: (block: CarBlock) => void): Promise<void>;
}

/** A whole CAR in memory, or chunks of one from a sync or async source. */
export type CarSource = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array> | ReadableStream<Uint8Array>;

/** Records are capped well below this (1 MiB); the margin leaves room for large MST nodes and the CID. */
export const DEFAULT_MAX_BLOCK_SIZE = 2 * 1024 * 1024 + 64 * 1024;
/** A header is a version and a few CIDs. */
export const DEFAULT_MAX_HEADER_SIZE = 64 * 1024;

/** 8 varint bytes hold 56 bits: far past any size limit, short enough to stop garbage early. */
const MAX_VARINT_BYTES = 8;
const EMPTY = new Uint8Array(0);

type PullResult = IteratorResult<unknown> | Promise<IteratorResult<unknown>>;

/** Turns any of the accepted sources into one `next()`/`close()` pair. */
function openSource(source: CarSource): { next: () => PullResult; close: () => Promise<void> } {
  // A Uint8Array is itself iterable (over numbers): treat it as the one and only chunk.
  if (source instanceof Uint8Array) source = [source];
  if (typeof (source as ReadableStream<Uint8Array>).getReader === 'function') {
    // Not every browser makes ReadableStream async-iterable, so use the reader directly.
    const reader = (source as ReadableStream<Uint8Array>).getReader();
    return {
      next: () => reader.read() as Promise<IteratorResult<unknown>>,
      close: () => reader.cancel(),
    };
  }
  const iterator =
    Symbol.asyncIterator in source
      ? (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
      : (source as Iterable<Uint8Array>)[Symbol.iterator]();
  return {
    next: () => iterator.next(),
    close: async () => {
      await iterator.return?.();
    },
  };
}

/** The byte cursor over the source: current chunk, position in it, absolute offset. */
class ByteInput {
  private chunk: Uint8Array = EMPTY;
  private pos = 0;
  /** Absolute stream offset of chunk[0]. */
  private base = 0;
  private ended = false;
  private readonly source: ReturnType<typeof openSource>;
  /** Block index for error messages; null while reading the header. */
  blockIndex: number | null = null;

  constructor(source: CarSource) {
    this.source = openSource(source);
  }

  get offset(): number {
    return this.base + this.pos;
  }

  fail(code: CarErrorCode, section: CarSection, problem: string, offset = this.offset, cause?: unknown): CarError {
    return new CarError(
      code,
      problem,
      { offset, blockIndex: this.blockIndex, section },
      cause === undefined ? undefined : { cause },
    );
  }

  /** Loads the next non-empty chunk; false once the source is exhausted. */
  async refill(): Promise<boolean> {
    if (this.ended) return false;
    for (;;) {
      const result = await this.source.next();
      if (result.done) {
        this.ended = true;
        return false;
      }
      const value = result.value;
      if (!(value instanceof Uint8Array)) {
        throw this.fail(
          'CarBadSource',
          this.blockIndex === null ? 'header' : 'block data',
          'source yielded something other than a Uint8Array',
        );
      }
      if (value.length > 0) {
        this.base += this.chunk.length;
        this.chunk = value;
        this.pos = 0;
        return true;
      }
    }
  }

  /** True when all bytes are consumed and the source has no more. */
  async atEnd(): Promise<boolean> {
    return this.pos >= this.chunk.length && !(await this.refill());
  }

  hasBuffered(): boolean {
    return this.pos < this.chunk.length;
  }

  /** Reads a section length varint; synchronous when the whole varint is in the current chunk. */
  readLength(section: CarSection): number | Promise<number> {
    const chunk = this.chunk;
    const start = this.pos;
    const end = Math.min(chunk.length, start + MAX_VARINT_BYTES);
    for (let i = start; i < end; i++) {
      if ((chunk[i]! & 0x80) === 0) {
        const value = this.decodeVarint(chunk, start, i + 1, section, this.offset);
        this.pos = i + 1;
        return value;
      }
    }
    if (end - start === MAX_VARINT_BYTES) {
      throw this.fail('CarVarintTooLong', section, `length varint is longer than ${MAX_VARINT_BYTES} bytes`);
    }
    return this.readLengthAcrossChunks(section);
  }

  private async readLengthAcrossChunks(section: CarSection): Promise<number> {
    const startOffset = this.offset;
    const bytes = new Uint8Array(MAX_VARINT_BYTES);
    for (let n = 0; n < MAX_VARINT_BYTES; n++) {
      if (this.pos >= this.chunk.length && !(await this.refill())) {
        throw this.fail(
          'CarTruncated',
          section,
          `stream ended after ${this.offset} bytes, inside the length varint that starts at byte ${startOffset}`,
        );
      }
      const byte = this.chunk[this.pos++]!;
      bytes[n] = byte;
      if ((byte & 0x80) === 0) return this.decodeVarint(bytes, 0, n + 1, section, startOffset);
    }
    throw this.fail('CarVarintTooLong', section, `length varint is longer than ${MAX_VARINT_BYTES} bytes`, startOffset);
  }

  private decodeVarint(bytes: Uint8Array, start: number, end: number, section: CarSection, offset: number): number {
    // A final 0x00 byte after continuation bytes adds nothing: the same value has a shorter form.
    if (end - start > 1 && bytes[end - 1] === 0) {
      throw this.fail('CarVarintNotMinimal', section, 'length varint is not minimally encoded', offset);
    }
    let value = 0;
    let scale = 1;
    for (let i = start; i < end; i++) {
      value += (bytes[i]! & 0x7f) * scale;
      scale *= 0x80;
    }
    return value;
  }

  /**
   * The next block when its whole section (length varint, CID, data) is in the current chunk and
   * passes every check (the common case: sections are small, chunks large), else undefined with
   * nothing consumed: then the section is read part by part, which handles chunk boundaries and
   * reports what is wrong. This is the same reading as readSection's, without an await per part.
   */
  readBufferedBlock(maxBlockSize: number): CarBlock | undefined {
    const chunk = this.chunk;
    const start = this.pos;
    // The length varint: at most MAX_VARINT_BYTES, minimal.
    let length = 0;
    let scale = 1;
    let i = start;
    for (;;) {
      if (i >= chunk.length || i - start === MAX_VARINT_BYTES) return undefined;
      const byte = chunk[i++]!;
      length += (byte & 0x7f) * scale;
      scale *= 0x80;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && i - start > 1) return undefined;
        break;
      }
    }
    if (length > maxBlockSize || length < ATPROTO_CID_LENGTH || i + length > chunk.length) return undefined;
    if (atprotoCidProblem(chunk, i) !== null) return undefined;
    const cid = cidFromCheckedBytes(chunk.slice(i, i + ATPROTO_CID_LENGTH));
    const bytes = chunk.subarray(i + ATPROTO_CID_LENGTH, i + length);
    if (!cidMatches(cid, bytes)) return undefined;
    this.pos = i + length;
    return { cid, bytes };
  }

  /** Reads exactly n bytes: a view when they are in the current chunk, else an assembled copy. */
  readBytes(n: number, section: CarSection, sectionStart: number): Uint8Array | Promise<Uint8Array> {
    if (this.pos + n <= this.chunk.length) {
      const view = this.chunk.subarray(this.pos, this.pos + n);
      this.pos += n;
      return view;
    }
    return this.readBytesAcrossChunks(n, section, sectionStart);
  }

  private async readBytesAcrossChunks(n: number, section: CarSection, sectionStart: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let written = 0;
    while (written < n) {
      if (this.pos >= this.chunk.length && !(await this.refill())) {
        throw this.fail(
          'CarTruncated',
          section,
          `stream ended after ${this.offset} bytes, ${n - written} bytes short of the end of the ${section} that starts at byte ${sectionStart}`,
        );
      }
      const take = Math.min(n - written, this.chunk.length - this.pos);
      out.set(this.chunk.subarray(this.pos, this.pos + take), written);
      this.pos += take;
      written += take;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    try {
      await this.source.close();
    } catch {
      // The stream is being abandoned (after an error or an early break); a failing cancel
      // must not hide the reason we stopped.
    }
  }
}

async function readHeader(input: ByteInput, maxHeaderSize: number, requireRoot: boolean): Promise<Cid[]> {
  if (await input.atEnd()) throw input.fail('CarTruncated', 'header length', 'stream is empty');
  const lengthResult = input.readLength('header length');
  const length = typeof lengthResult === 'number' ? lengthResult : await lengthResult;
  if (length === 0) throw input.fail('CarBadHeader', 'header length', 'header length is zero');
  if (length > maxHeaderSize) {
    throw input.fail(
      'CarHeaderTooLarge',
      'header length',
      `header of ${length} bytes exceeds the ${maxHeaderSize}-byte limit`,
    );
  }
  const start = input.offset;
  const bytesResult = input.readBytes(length, 'header', start);
  const bytes = bytesResult instanceof Uint8Array ? bytesResult : await bytesResult;
  let header: unknown;
  try {
    header = decodeCbor(bytes);
  } catch (err) {
    throw input.fail('CarBadHeader', 'header', `header is not valid DAG-CBOR: ${(err as Error).message}`, start, err);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw input.fail('CarBadHeader', 'header', 'header is not a map', start);
  }
  const { version, roots } = header as { version?: unknown; roots?: unknown };
  if (version !== 1)
    throw input.fail('CarBadHeader', 'header', `unsupported version ${JSON.stringify(version)} (expected 1)`, start);
  if (!Array.isArray(roots)) throw input.fail('CarBadHeader', 'header', 'header has no "roots" array', start);
  if (requireRoot && roots.length === 0) throw input.fail('CarBadHeader', 'header', 'header lists no root', start);
  return roots.map((root, i) => {
    if (!isCidLink(root)) throw input.fail('CarBadHeader', 'header', `root ${i} is not a CID link`, start);
    try {
      return fromCidLink(root);
    } catch (err) {
      throw input.fail('CarBadHeader', 'header', `root ${i} is not a valid CID`, start, err);
    }
  });
}

function decodeBlockCid(input: ByteInput, bytes: Uint8Array, sectionStart: number): Cid {
  const problem = atprotoCidProblem(bytes, 0);
  if (problem !== null) throw input.fail('CarBadCid', 'block CID', problem, sectionStart);
  // Copied: the CID outlives the chunk it came from (it becomes a map key in block stores).
  return cidFromCheckedBytes(bytes.slice());
}

/** Reads one block section part by part, awaiting the source wherever a part spans chunks. */
async function readSection(input: ByteInput, maxBlockSize: number): Promise<CarBlock> {
  const sectionStart = input.offset;
  const lengthResult = input.readLength('block length');
  const length = typeof lengthResult === 'number' ? lengthResult : await lengthResult;
  if (length > maxBlockSize) {
    throw input.fail(
      'CarBlockTooLarge',
      'block length',
      `block section of ${length} bytes exceeds the ${maxBlockSize}-byte limit`,
      sectionStart,
    );
  }
  if (length < ATPROTO_CID_LENGTH) {
    throw input.fail(
      'CarBadSection',
      'block length',
      `section of ${length} bytes cannot hold a CID and a block`,
      sectionStart,
    );
  }
  const cidStart = input.offset;
  const cidResult = input.readBytes(ATPROTO_CID_LENGTH, 'block CID', cidStart);
  const cid = decodeBlockCid(input, cidResult instanceof Uint8Array ? cidResult : await cidResult, cidStart);
  const dataStart = input.offset;
  const bytesResult = input.readBytes(length - ATPROTO_CID_LENGTH, 'block data', dataStart);
  const bytes = bytesResult instanceof Uint8Array ? bytesResult : await bytesResult;
  if (!cidMatches(cid, bytes)) {
    throw input.fail('CarHashMismatch', 'block data', 'block bytes do not hash to the CID in front of them', dataStart);
  }
  return { cid, bytes };
}

async function* readBlocks(input: ByteInput, maxBlockSize: number): AsyncGenerator<CarBlock, void, undefined> {
  let index = 0;
  try {
    while (input.hasBuffered() || (await input.refill())) {
      input.blockIndex = index;
      yield input.readBufferedBlock(maxBlockSize) ?? (await readSection(input, maxBlockSize));
      index++;
    }
  } finally {
    await input.close();
  }
}

async function eachBlock(input: ByteInput, maxBlockSize: number, onBlock: (block: CarBlock) => void): Promise<void> {
  let index = 0;
  try {
    while (input.hasBuffered() || (await input.refill())) {
      input.blockIndex = index;
      onBlock(input.readBufferedBlock(maxBlockSize) ?? (await readSection(input, maxBlockSize)));
      index++;
    }
  } finally {
    await input.close();
  }
}

/**
 * Reads the header now (so `roots` is known before any block), and returns the blocks as an
 * async iterable that pulls the rest of the source lazily.
 */
export async function readCar(source: CarSource, options: ReadCarOptions = {}): Promise<CarReader> {
  const input = new ByteInput(source);
  let roots: Cid[];
  try {
    roots = await readHeader(input, options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE, options.requireRoot ?? false);
  } catch (err) {
    await input.close();
    throw err;
  }
  const maxBlockSize = options.maxBlockSize ?? DEFAULT_MAX_BLOCK_SIZE;
  let consumed = false;
  const once = () => {
    if (consumed) throw new TypeError('the blocks of a CAR reader can be read only once');
    consumed = true;
  };
  return {
    roots,
    blocks: {
      [Symbol.asyncIterator]() {
        once();
        return readBlocks(input, maxBlockSize);
      },
    },
    async forEachBlock(onBlock) {
      once();
      return eachBlock(input, maxBlockSize, onBlock);
    },
  };
}

/** Reads a whole in-memory CAR, with the same checks as the streaming reader. */
export async function readCarBytes(
  bytes: Uint8Array,
  options: ReadCarOptions = {},
): Promise<{ roots: Cid[]; blocks: CarBlock[] }> {
  const car = await readCar(bytes, options);
  const blocks: CarBlock[] = [];
  await car.forEachBlock((block) => blocks.push(block));
  return { roots: car.roots, blocks };
}
