/**
 * The wire form of one MST node: `{l, e: [{p, k, v, t}]}` in canonical DAG-CBOR.
 *   l: CID of the subtree left of the first key, or null
 *   e: entries in key order; p = bytes shared with the previous key, k = the rest of the key,
 *      v = the record CID, t = CID of the subtree right of this key (before the next), or null.
 *
 * Encoding is hand-written because the shape is fixed and small: it avoids building the
 * intermediate object graph a generic encoder needs, and the output is canonical by
 * construction (map keys already in DAG-CBOR order: e < l, k < p < t < v). Decoding goes through
 * @atcute/cbor's strict decoder (which rejects non-canonical input) and then checks the shape,
 * so a malformed node is reported as such instead of surfacing as a crash later.
 */
import { decode } from '@atcute/cbor';
import { type Cid, cidFromBytes } from '../cid.ts';
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
