/**
 * A synchronous, in-memory CAR v1 encoder for the small block sets a firehose event carries
 * (a commit's new blocks and proof blocks, or a lone commit block for #sync).
 *
 * Why not the streaming CAR writer: events are built inside the actor store's SQLite write
 * transaction, and better-sqlite3 transactions are synchronous, so an async generator cannot be
 * awaited there. Event CARs are capped at 2,000,000 bytes, so building them in memory is fine.
 */
import { varintLength, writeVarint } from '@portage/atproto/car/varint';
import { encodeCarHeader } from '@portage/atproto/car/writer';
import type { Cid } from '@portage/atproto/cid';
import { cidKey } from '@portage/atproto/repo/block-store';

export interface CarBlock {
  cid: Cid;
  bytes: Uint8Array;
}

/** Encodes a CAR with one root; blocks with the same CID are written once, in first-seen order. */
export function encodeEventCar(root: Cid, blocks: Iterable<CarBlock>): Uint8Array {
  const header = encodeCarHeader([root]);
  const seen = new Set<string>();
  const unique: CarBlock[] = [];
  for (const block of blocks) {
    const key = cidKey(block.cid);
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(block);
  }
  const out = new Uint8Array(carSize(header, unique));
  out.set(header, 0);
  let offset = header.length;
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
  return carSize(encodeCarHeader([root]), uniqueBlocks);
}

/** `header` is the length-prefixed header encodeCarHeader makes. */
function carSize(header: Uint8Array, blocks: Iterable<CarBlock>): number {
  let size = header.length;
  for (const block of blocks) {
    const section = block.cid.bytes.length + block.bytes.length;
    size += varintLength(section) + section;
  }
  return size;
}
