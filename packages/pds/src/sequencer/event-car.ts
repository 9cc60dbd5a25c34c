/**
 * A synchronous, in-memory CAR v1 encoder for the small block sets a firehose event carries
 * (a commit's new blocks and proof blocks, or a lone commit block for #sync).
 *
 * Why not the streaming CAR writer: events are built inside the actor store's SQLite write
 * transaction, and better-sqlite3 transactions are synchronous, so an async generator cannot be
 * awaited there. Event CARs are capped at 2,000,000 bytes, so building them in memory is fine.
 */
import { encode as encodeCbor, toCidLink } from '@atcute/cbor';
import { varintLength, writeVarint } from '@portage/atproto/car/varint';
import type { Cid } from '@portage/atproto/cid';
import { formatCid } from '@portage/atproto/cid';

export interface CarBlock {
  cid: Cid;
  bytes: Uint8Array;
}

/** Encodes a CAR with one root; blocks with the same CID are written once, in first-seen order. */
export function encodeEventCar(root: Cid, blocks: Iterable<CarBlock>): Uint8Array {
  const header = carHeader(root);
  const seen = new Set<string>();
  const unique: CarBlock[] = [];
  for (const block of blocks) {
    const key = formatCid(block.cid);
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(block);
  }
  const out = new Uint8Array(carSize(header, unique));
  let offset = writeVarint(header.length, out, 0);
  out.set(header, offset);
  offset += header.length;
  for (const block of unique) {
    offset = writeVarint(block.cid.bytes.length + block.bytes.length, out, offset);
    out.set(block.cid.bytes, offset);
    offset += block.cid.bytes.length;
    out.set(block.bytes, offset);
    offset += block.bytes.length;
  }
  return out;
}

/**
 * The exact size of what encodeEventCar makes of `root` and `blocks`, without encoding it, when
 * no two blocks share a CID (what the firehose's size limit is measured on).
 */
export function eventCarSize(root: Cid, uniqueBlocks: Iterable<CarBlock>): number {
  return carSize(carHeader(root), uniqueBlocks);
}

function carHeader(root: Cid): Uint8Array {
  return encodeCbor({ version: 1, roots: [toCidLink(root)] });
}

function carSize(header: Uint8Array, blocks: Iterable<CarBlock>): number {
  let size = varintLength(header.length) + header.length;
  for (const block of blocks) {
    const section = block.cid.bytes.length + block.bytes.length;
    size += varintLength(section) + section;
  }
  return size;
}
