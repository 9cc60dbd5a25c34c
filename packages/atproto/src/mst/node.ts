/**
 * The wire form of one MST node: `{l, e: [{p, k, v, t}]}` in canonical DAG-CBOR.
 *   l: CID of the subtree left of the first key, or null
 *   e: entries in key order; p = bytes shared with the previous key, k = the rest of the key,
 *      v = the record CID, t = CID of the subtree right of this key (before the next), or null.
 *
 * Encoding is hand-written because the shape is fixed and small: it avoids building the
 * intermediate object graph a generic encoder needs, and the output is canonical by
 * construction (map keys already in DAG-CBOR order: e < l, k < p < t < v).
 *
 * Decoding has two paths. Nearly every node ever read is exactly what `encodeNode` writes, so a
 * hand-written reader takes that one byte layout and nothing else, building keys and CIDs straight
 * from the bytes (no intermediate object graph, no CID parsed twice). Anything it does not
 * recognise goes to the general path, @atcute/cbor's strict decoder (which rejects non-canonical
 * input) followed by shape checks, which either accepts the node or names what is wrong with it.
 * The fast reader only accepts nodes the general path accepts, with the same result, so the two
 * differ in speed only.
 */
import { decode } from '@atcute/cbor';
import { ATPROTO_CID_LENGTH, atprotoCidProblem, type Cid, cidFromBytes, cidFromCheckedBytes } from '../cid.ts';
import { asciiCommonPrefixLength, findMstKeyProblem, MstError } from './keys.ts';

/** A node's content with keys expanded (prefix compression undone). */
export interface NodeContent {
  left: Cid | null;
  keys: string[];
  values: Cid[];
  /** rights[i] is the subtree between keys[i] and keys[i + 1] (or after the last key). */
  rights: (Cid | null)[];
}

class ByteWriter {
  buf: Uint8Array;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
  header(major: number, n: number): void {
    this.ensure(9);
    const m = major << 5;
    if (n < 24) this.buf[this.pos++] = m | n;
    else if (n < 0x100) {
      this.buf[this.pos++] = m | 24;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.buf[this.pos++] = m | 25;
      this.buf[this.pos++] = n >> 8;
      this.buf[this.pos++] = n & 0xff;
    } else {
      this.buf[this.pos++] = m | 26;
      this.buf[this.pos++] = (n >>> 24) & 0xff;
      this.buf[this.pos++] = (n >> 16) & 0xff;
      this.buf[this.pos++] = (n >> 8) & 0xff;
      this.buf[this.pos++] = n & 0xff;
    }
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  cidOrNull(cid: Cid | null): void {
    if (cid === null) {
      this.byte(0xf6);
      return;
    }
    // tag 42, then a byte string of 0x00 (the multibase identity prefix) + the binary CID
    this.byte(0xd8);
    this.byte(0x2a);
    this.header(2, cid.bytes.length + 1);
    this.byte(0x00);
    this.bytes(cid.bytes);
  }
}

/** Canonical DAG-CBOR bytes of a node. Keys must be sorted ASCII keys (the tree guarantees it). */
export function encodeNode(content: NodeContent): Uint8Array {
  const { left, keys, values, rights } = content;
  const w = new ByteWriter(16 + keys.length * 100);
  w.byte(0xa2); // map(2)
  w.byte(0x61); // "e"
  w.byte(0x65);
  w.header(4, keys.length);
  let prev = '';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const p = asciiCommonPrefixLength(prev, key);
    w.byte(0xa4); // map(4)
    w.byte(0x61); // "k"
    w.byte(0x6b);
    w.header(2, key.length - p);
    w.ensure(key.length - p);
    for (let j = p; j < key.length; j++) w.buf[w.pos++] = key.charCodeAt(j);
    w.byte(0x61); // "p"
    w.byte(0x70);
    w.header(0, p);
    w.byte(0x61); // "t"
    w.byte(0x74);
    w.cidOrNull(rights[i] ?? null);
    w.byte(0x61); // "v"
    w.byte(0x76);
    w.cidOrNull(values[i] as Cid);
    prev = key;
  }
  w.byte(0x61); // "l"
  w.byte(0x6c);
  w.cidOrNull(left);
  return w.buf.slice(0, w.pos);
}

function invalid(message: string): MstError {
  return new MstError('InvalidNode', message);
}

function asCid(value: unknown, what: string): Cid {
  const bytes = (value as { bytes?: unknown } | null)?.bytes;
  if (value === null || typeof value !== 'object' || !('$link' in value || bytes instanceof Uint8Array)) {
    throw invalid(`${what} is not a CID link`);
  }
  if (!(bytes instanceof Uint8Array)) throw invalid(`${what} is not a binary CID link`);
  try {
    return cidFromBytes(bytes);
  } catch {
    throw invalid(`${what} is not a valid CID`);
  }
}

function asCidOrNull(value: unknown, what: string): Cid | null {
  return value === null ? null : asCid(value, what);
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i] as number);
  return s;
}

/**
 * Decodes and checks a node block. With `strict`, also checks what only matters for untrusted
 * input: every key is a valid MST key, keys strictly increase, and `p` is the full shared prefix
 * (anything else would hash differently from the canonical node).
 */
export function decodeNode(bytes: Uint8Array, strict = false): NodeContent {
  return readCanonicalNode(bytes, strict) ?? decodeNodeGeneral(bytes, strict);
}

/** Tag 42, bytes(37), the 0x00 multibase prefix, CIDv1: how every CID link in a node starts. */
const CID_LINK_HEADER = [0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01];
/** That header minus the CIDv1 byte (5 bytes), then the 36-byte CID. */
const CID_LINK_LENGTH = 5 + ATPROTO_CID_LENGTH;
/** Longest key suffix the fast reader takes (the longest valid key); longer ones go the general way. */
const MAX_SUFFIX = 1024;

// Cursor of the fast reader: it is synchronous and not re-entrant.
let at = 0;

/**
 * The argument of the CBOR head at `at` when its major type is `major` and it is in the
 * shortest form, at most 16 bits (all a node needs); -1 for anything else.
 */
function readHead(bytes: Uint8Array, major: number): number {
  if (at >= bytes.length) return -1;
  const head = bytes[at++]!;
  if (head >> 5 !== major) return -1;
  const info = head & 0x1f;
  if (info < 24) return info;
  if (info === 24) {
    if (at + 1 > bytes.length) return -1;
    const value = bytes[at++]!;
    return value < 24 ? -1 : value;
  }
  if (info === 25) {
    if (at + 2 > bytes.length) return -1;
    const value = (bytes[at]! << 8) | bytes[at + 1]!;
    at += 2;
    return value < 0x100 ? -1 : value;
  }
  return -1;
}

/** True when the two bytes at `at` are a one-letter text string (a map key), which is consumed. */
function readKey(bytes: Uint8Array, letter: number): boolean {
  if (bytes[at] !== 0x61 || bytes[at + 1] !== letter) return false;
  at += 2;
  return true;
}

/**
 * The CID link at `at` when it is a canonical CIDv1 (DAG-CBOR or raw, SHA-256), or null (0xf6)
 * when `nullable`. The CID's bytes are a view into `bytes`, as @atcute/cid's decoder gives them.
 * Undefined for anything else.
 */
function readCidLink(bytes: Uint8Array, nullable: boolean): Cid | null | undefined {
  if (nullable && bytes[at] === 0xf6) {
    at++;
    return null;
  }
  if (at + CID_LINK_LENGTH > bytes.length) return undefined;
  for (let j = 0; j < CID_LINK_HEADER.length; j++) if (bytes[at + j] !== CID_LINK_HEADER[j]) return undefined;
  if (atprotoCidProblem(bytes, at + 5) !== null) return undefined;
  const cid = cidFromCheckedBytes(bytes.subarray(at + 5, at + CID_LINK_LENGTH));
  at += CID_LINK_LENGTH;
  return cid;
}

/**
 * The node in `bytes` when it is laid out exactly as `encodeNode` writes it (and, with `strict`,
 * its keys pass every check the general path makes); null for anything else, which the general
 * path then decodes or rejects with the reason.
 */
function readCanonicalNode(bytes: Uint8Array, strict: boolean): NodeContent | null {
  // map(2) "e" array(n)
  if (bytes[0] !== 0xa2) return null;
  at = 1;
  if (!readKey(bytes, 0x65)) return null;
  const count = readHead(bytes, 4);
  // An entry takes over 50 bytes: a count the block cannot hold is not worth allocating for.
  if (count < 0 || count * 50 > bytes.length) return null;
  const keys: string[] = new Array(count);
  const values: Cid[] = new Array(count);
  const rights: (Cid | null)[] = new Array(count);
  let prev = '';
  for (let i = 0; i < count; i++) {
    // map(4) "k" bytes "p" uint "t" CID-or-null "v" CID
    if (bytes[at++] !== 0xa4 || !readKey(bytes, 0x6b)) return null;
    const suffixLength = readHead(bytes, 2);
    if (suffixLength < 0 || suffixLength > MAX_SUFFIX || at + suffixLength > bytes.length) return null;
    const suffix = bytes.subarray(at, at + suffixLength);
    at += suffixLength;
    if (!readKey(bytes, 0x70)) return null;
    const prefix = readHead(bytes, 0);
    if (prefix < 0 || prefix > prev.length || (i === 0 && prefix !== 0)) return null;
    const key = prev.slice(0, prefix) + String.fromCharCode.apply(null, suffix as unknown as number[]);
    if (strict) {
      if (findMstKeyProblem(key) !== null) return null;
      if (i > 0 && key <= prev) return null;
      if (asciiCommonPrefixLength(prev, key) !== prefix) return null;
    }
    if (!readKey(bytes, 0x74)) return null;
    const right = readCidLink(bytes, true);
    if (right === undefined || !readKey(bytes, 0x76)) return null;
    const value = readCidLink(bytes, false);
    if (!value) return null;
    keys[i] = key;
    values[i] = value;
    rights[i] = right;
    prev = key;
  }
  // "l" CID-or-null, and nothing after it
  if (!readKey(bytes, 0x6c)) return null;
  const left = readCidLink(bytes, true);
  if (left === undefined || at !== bytes.length) return null;
  return { left, keys, values, rights };
}

/** The general path alone: what `decodeNode` falls back to (tests hold the two to the same answers). */
export function decodeNodeGeneral(bytes: Uint8Array, strict = false): NodeContent {
  let data: unknown;
  try {
    data = decode(bytes);
  } catch (err) {
    throw new MstError('NonCanonicalCbor', `MST node is not canonical DAG-CBOR: ${(err as Error).message}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw invalid('MST node is not a map');
  const obj = data as Record<string, unknown>;
  const names = Object.keys(obj);
  if (names.length !== 2 || !('e' in obj) || !('l' in obj))
    throw invalid('MST node must have exactly the fields l and e');
  const left = asCidOrNull(obj.l, 'MST node field l');
  const entries = obj.e;
  if (!Array.isArray(entries)) throw invalid('MST node field e is not an array');
  const keys: string[] = new Array(entries.length);
  const values: Cid[] = new Array(entries.length);
  const rights: (Cid | null)[] = new Array(entries.length);
  let prev = '';
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as Record<string, unknown>;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
      throw invalid(`MST entry ${i} is not a map`);
    if (Object.keys(entry).length !== 4) throw invalid(`MST entry ${i} must have exactly the fields p, k, v, t`);
    const p = entry.p;
    const k = (entry.k as { buf?: unknown } | null)?.buf;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > prev.length) {
      throw invalid(`MST entry ${i} has an invalid prefix length`);
    }
    if (!(k instanceof Uint8Array)) throw invalid(`MST entry ${i} field k is not bytes`);
    if (i === 0 && p !== 0) throw invalid('first MST entry must have prefix length 0');
    const key = prev.slice(0, p) + latin1(k);
    if (strict) {
      const problem = findMstKeyProblem(key);
      if (problem !== null) throw new MstError('InvalidKey', `MST entry ${i}: ${problem}`);
      if (i > 0 && key <= prev) {
        throw new MstError(
          'UnsortedKeys',
          `MST keys out of order: ${JSON.stringify(key)} after ${JSON.stringify(prev)}`,
        );
      }
      if (asciiCommonPrefixLength(prev, key) !== p) throw invalid(`MST entry ${i} does not use the full shared prefix`);
    }
    keys[i] = key;
    values[i] = asCid(entry.v, `MST entry ${i} field v`);
    rights[i] = asCidOrNull(entry.t, `MST entry ${i} field t`);
    prev = key;
  }
  return { left, keys, values, rights };
}
