/**
 * A synchronous, in-memory CAR v1 encoder for the small block sets a firehose event carries
 * (a commit's new blocks and proof blocks, or a lone commit block for #sync).
 *
 * Why not the streaming CAR writer: events are built inside the actor store's SQLite write
 * transaction, and better-sqlite3 transactions are synchronous, so an async generator cannot be
 * awaited there. Event CARs are capped at 2,000,000 bytes, so building them in memory is fine.
 */
import { encode as encodeCbor, toCidLink } from '@atcute/cbor';
import { encode as encodeVarint, encodingLength } from '@atcute/varint';
import type { Cid } from '@portage/atproto/cid';
import { formatCid } from '@portage/atproto/cid';

export interface CarBlock {
  cid: Cid;
  bytes: Uint8Array;
}

/** Encodes a CAR with one root; blocks with the same CID are written once, in first-seen order. */
export function encodeEventCar(root: Cid, blocks: Iterable<CarBlock>): Uint8Array {
  const header = encodeCbor({ version: 1, roots: [toCidLink(root)] });
  const seen = new Set<string>();
  const unique: CarBlock[] = [];
  let size = encodingLength(header.length) + header.length;
  for (const block of blocks) {
    const key = formatCid(block.cid);
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(block);
    const entryLength = block.cid.bytes.length + block.bytes.length;
    size += encodingLength(entryLength) + entryLength;
  }
  const out = new Uint8Array(size);
  let offset = encodeVarint(header.length, out, 0);
  out.set(header, offset);
  offset += header.length;
  for (const block of unique) {
    offset += encodeVarint(block.cid.bytes.length + block.bytes.length, out, offset);
    out.set(block.cid.bytes, offset);
    offset += block.cid.bytes.length;
    out.set(block.bytes, offset);
    offset += block.bytes.length;
  }
  return out;
}
