/**
 * Canonical DAG-CBOR, the byte form of the atproto data model (https://atproto.com/specs/data-model).
 *
 * Encoding is @atcute/cbor's (it already writes the canonical form: shortest lengths, map keys sorted
 * length-first then bytewise) after a cheap walk that rejects what the data model forbids (floats,
 * unsafe integers, undefined in arrays, lone surrogates, non-plain objects).
 *
 * Decoding is our own single pass, because the CID of a block is the hash of its bytes: two encodings
 * of the same value would be two different identities, so anything that is not the one canonical
 * encoding must be refused, and @atcute/cbor's decoder accepts floats (including integral ones like
 * 1.0, which would silently re-encode differently). Checking while decoding costs almost nothing,
 * whereas decode + re-encode + compare would more than double the cost of reading MST nodes.
 * Decoded values use @atcute's CidLinkWrapper / BytesWrapper so they flow straight into
 * @atcute/cbor's encoder and JSON.stringify. Byte strings and CIDs are views into the input buffer
 * (no copy): do not mutate a buffer after decoding it.
 */

import { BytesWrapper, encode } from '@atcute/cbor';
import { CidLinkWrapper } from '@atcute/cid';
import { fromBase64 } from '@atcute/multibase';
import { decodeUtf8From } from '@atcute/uint8array';
import { ATPROTO_CID_LENGTH, atprotoCidProblem, parseCid } from '../cid.ts';
import { DataModelError, describeValue } from './error.ts';
import type { DataValue } from './types.ts';

/** Nesting deeper than this is refused rather than risking a stack overflow on hostile input. */
export const MAX_DEPTH = 256;

const CID_TAG = 42;
const CID_BINARY_LENGTH = 1 + ATPROTO_CID_LENGTH; // the 0x00 multibase-identity prefix, then the binary CID

// Decoder state lives in module variables: decoding is synchronous and not re-entrant, and this is
// measurably faster than threading a state object through every call on the hot path.
let buf: Uint8Array = new Uint8Array(0);
let pos = 0;

function fail(message: string, at: number = pos): never {
  throw new DataModelError('InvalidCbor', `invalid DAG-CBOR at byte ${at}: ${message}`);
}

/** Decodes exactly one canonical DAG-CBOR value that spans all of `bytes`. */
export function decodeCbor(bytes: Uint8Array): DataValue {
  const { value, length } = decodeCborPrefix(bytes);
  if (length !== bytes.length) fail(`${bytes.length - length} trailing bytes after the value`, length);
  return value;
}

/**
 * Decodes one canonical DAG-CBOR value from the start of `bytes` and says how many bytes it used
 * (for concatenated values, such as an event stream frame's header and body).
 */
export function decodeCborPrefix(bytes: Uint8Array): { value: DataValue; length: number } {
  if (!(bytes instanceof Uint8Array)) throw new DataModelError('InvalidCbor', 'DAG-CBOR input must be a Uint8Array');
  buf = bytes;
  pos = 0;
  try {
    if (bytes.length === 0) fail('empty input');
    const value = readValue(0);
    return { value, length: pos };
  } finally {
    buf = EMPTY;
  }
}

const EMPTY = new Uint8Array(0);

function need(count: number): void {
  if (count > buf.length - pos) fail(`unexpected end of input (needed ${count} more bytes, ${buf.length - pos} left)`);
}

/** Reads the argument of a head whose additional info is `info`, insisting on the shortest form. */
function readArgument(info: number, start: number): number {
  if (info < 24) return info;
  switch (info) {
    case 24: {
      need(1);
      const value = buf[pos++]!;
      if (value < 24) fail(`non-minimal integer/length encoding (${value} in 1 extra byte)`, start);
      return value;
    }
    case 25: {
      need(2);
      const value = (buf[pos]! << 8) | buf[pos + 1]!;
      pos += 2;
      if (value < 0x100) fail(`non-minimal integer/length encoding (${value} in 2 extra bytes)`, start);
      return value;
    }
    case 26: {
      need(4);
      const value = ((buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0;
      pos += 4;
      if (value < 0x10000) fail(`non-minimal integer/length encoding (${value} in 4 extra bytes)`, start);
      return value;
    }
    case 27: {
      need(8);
      const high = ((buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0;
      const low = ((buf[pos + 4]! << 24) | (buf[pos + 5]! << 16) | (buf[pos + 6]! << 8) | buf[pos + 7]!) >>> 0;
      pos += 8;
      if (high === 0) fail(`non-minimal integer/length encoding (${low} in 8 extra bytes)`, start);
      // JavaScript numbers are exact up to 2^53 - 1; larger values cannot round-trip.
      if (high > 0x1fffff) fail('integer or length beyond the safe integer range (2^53 - 1)', start);
      return high * 0x100000000 + low;
    }
    case 31:
      return fail('indefinite-length items are not allowed', start);
    default:
      return fail(`reserved additional info ${info}`, start);
  }
}

function readValue(depth: number): DataValue {
  need(1);
  const start = pos;
  const head = buf[pos++]!;
  const major = head >> 5;
  const info = head & 0x1f;
  switch (major) {
    case 0:
      return readArgument(info, start);
    case 1: {
      const value = -1 - readArgument(info, start);
      if (value < Number.MIN_SAFE_INTEGER) fail('negative integer beyond the safe integer range', start);
      return value;
    }
    case 2: {
      const length = readArgument(info, start);
      need(length);
      const bytes = buf.subarray(pos, pos + length);
      pos += length;
      return new BytesWrapper(bytes);
    }
    case 3:
      return readString(readArgument(info, start), start);
    case 4: {
      const length = readArgument(info, start);
      // Every element takes at least one byte: refuse impossible lengths before allocating.
      need(length);
      if (depth >= MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`, start);
      const array: DataValue[] = new Array(length);
      for (let i = 0; i < length; i++) array[i] = readValue(depth + 1);
      return array;
    }
    case 5:
      return readMap(readArgument(info, start), start, depth);
    case 6: {
      const tag = readArgument(info, start);
      if (tag !== CID_TAG) fail(`tag ${tag} is not allowed (only tag 42, CID links)`, start);
      return readCid();
    }
    default:
      return readSimple(head, info, start);
  }
}

/** Major type 7: only false, true and null exist in the data model. */
function readSimple(head: number, info: number, start: number): boolean | null {
  if (head === 0xf4) return false;
  if (head === 0xf5) return true;
  if (head === 0xf6) return null;
  if (head === 0xf7) fail('undefined is not allowed', start);
  if (info >= 25 && info <= 27) fail('floating-point numbers are not allowed in the atproto data model', start);
  if (info === 31) fail('unexpected "break" (indefinite-length items are not allowed)', start);
  return fail(`simple value ${info} is not allowed`, start);
}

function readString(length: number, start: number): string {
  need(length);
  let value: string;
  try {
    value = decodeUtf8From(buf, pos, length);
  } catch {
    fail('text string is not valid UTF-8', start);
  }
  pos += length;
  return value;
}

function readCid(): CidLinkWrapper {
  const cidStart = checkCidLink();
  return new CidLinkWrapper(buf.subarray(cidStart, cidStart + ATPROTO_CID_LENGTH));
}

/** Checks the byte string a tag 42 wraps and steps over it; returns where the binary CID starts. */
function checkCidLink(): number {
  need(1);
  const start = pos;
  const head = buf[pos++]!;
  if (head >> 5 !== 2) fail('tag 42 must wrap a byte string', start);
  const length = readArgument(head & 0x1f, start);
  need(length);
  if (length !== CID_BINARY_LENGTH || buf[pos] !== 0x00) {
    fail(`CID link must be 0x00 + a 36-byte CIDv1 with SHA-256 (got ${length} bytes)`, start);
  }
  const cidStart = pos + 1;
  const problem = atprotoCidProblem(buf, cidStart);
  if (problem !== null) fail(`CID link: ${problem}`, start);
  pos += length;
  return cidStart;
}

function readMap(count: number, start: number, depth: number): Record<string, DataValue> {
  // A key and a value take at least one byte each.
  need(count * 2);
  if (depth >= MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`, start);
  const map: Record<string, DataValue> = {};
  let previousStart = 0;
  let previousLength = -1;
  for (let i = 0; i < count; i++) {
    const keyHead = pos;
    const keyLength = readMapKeyHead();
    const keyStart = pos;
    const key = readString(keyLength, keyHead);
    checkMapKey(keyHead, keyStart, keyLength, previousStart, previousLength);
    previousStart = keyStart;
    previousLength = keyLength;
    const value = readValue(depth + 1);
    if (key === '__proto__') {
      // Plain assignment would set the prototype instead of creating a property.
      Object.defineProperty(map, key, { value, enumerable: true, configurable: true, writable: true });
    } else {
      map[key] = value;
    }
  }
  return map;
}

/** Reads a map key's head (it must be a text string); returns the key's length, `pos` at its bytes. */
function readMapKeyHead(): number {
  need(1);
  const keyHead = pos;
  const head = buf[pos++]!;
  if (head >> 5 !== 3) fail(`map keys must be text strings (got major type ${head >> 5})`, keyHead);
  return readArgument(head & 0x1f, keyHead);
}

/**
 * The rules a map key (already read, valid UTF-8, at `keyStart`) must meet besides being a text
 * string: it sorts after the previous key (previousLength -1 for the first) and is not reserved.
 */
function checkMapKey(
  keyHead: number,
  keyStart: number,
  keyLength: number,
  previousStart: number,
  previousLength: number,
): void {
  // Canonical order: shorter keys first, then bytewise on the UTF-8 bytes. Equal means duplicate.
  if (previousLength >= 0) {
    let order = keyLength - previousLength;
    for (let j = 0; order === 0 && j < keyLength; j++) order = buf[keyStart + j]! - buf[previousStart + j]!;
    if (order === 0) fail(`duplicate map key ${quotedKey(keyStart, keyLength)}`, keyHead);
    if (order < 0)
      fail(`map keys not in canonical order (${quotedKey(keyStart, keyLength)} after a key that sorts later)`, keyHead);
  }
  // "$link" and "$bytes" maps are how the JSON form (and @atcute's in-memory form) spells CID links
  // and byte strings; a real map with such a key would come back as a different value.
  if ((keyLength === 5 || keyLength === 6) && buf[keyStart] === 0x24 && isReservedKey(keyStart, keyLength)) {
    fail(`map key ${quotedKey(keyStart, keyLength)} is reserved in the atproto data model`, keyHead);
  }
}

/**
 * True for "$link" (5 bytes) or "$bytes" (6 bytes) at `keyStart`, whose "$" the caller has seen.
 * Spelled out byte by byte: every record has a 5-byte "$type" key that comes through here.
 */
function isReservedKey(keyStart: number, keyLength: number): boolean {
  const b = buf;
  const k = keyStart;
  return keyLength === 5
    ? b[k + 1] === 0x6c && b[k + 2] === 0x69 && b[k + 3] === 0x6e && b[k + 4] === 0x6b
    : b[k + 1] === 0x62 && b[k + 2] === 0x79 && b[k + 3] === 0x74 && b[k + 4] === 0x65 && b[k + 5] === 0x73;
}

/** True when `expected` sits at `start` in the input. */
function bytesAt(start: number, expected: Uint8Array): boolean {
  for (let j = 0; j < expected.length; j++) if (buf[start + j] !== expected[j]) return false;
  return true;
}

/** A key already checked to be valid UTF-8, for an error message. */
function quotedKey(keyStart: number, keyLength: number): string {
  return JSON.stringify(decodeUtf8From(buf, keyStart, keyLength));
}

/**
 * Checks that `bytes` is exactly one canonical DAG-CBOR value, exactly as decodeCbor does (same
 * rules, same DataModelError for the first problem), without building the value: no strings, maps,
 * arrays or CID objects, which is most of what decoding costs. Returns true when some map in it
 * (at any depth) has the key `watchKey` (its UTF-8 bytes), so a caller looking for one kind of
 * structure decodes only the values that can contain it.
 */
export function checkCbor(bytes: Uint8Array, watchKey?: Uint8Array): boolean {
  if (!(bytes instanceof Uint8Array)) throw new DataModelError('InvalidCbor', 'DAG-CBOR input must be a Uint8Array');
  buf = bytes;
  pos = 0;
  watched = watchKey;
  sawWatched = false;
  try {
    if (bytes.length === 0) fail('empty input');
    skipValue(0);
    if (pos !== bytes.length) fail(`${bytes.length - pos} trailing bytes after the value`, pos);
    return sawWatched;
  } finally {
    buf = EMPTY;
    watched = undefined;
  }
}

let watched: Uint8Array | undefined;
let sawWatched = false;

// skipValue, skipString and skipMap mirror readValue, readString and readMap check for check, in
// the same order, so that the two accept exactly the same inputs and fail with the same message.

function skipValue(depth: number): void {
  need(1);
  const start = pos;
  const head = buf[pos++]!;
  const major = head >> 5;
  const info = head & 0x1f;
  switch (major) {
    case 0:
      readArgument(info, start);
      return;
    case 1:
      if (-1 - readArgument(info, start) < Number.MIN_SAFE_INTEGER) {
        fail('negative integer beyond the safe integer range', start);
      }
      return;
    case 2: {
      const length = readArgument(info, start);
      need(length);
      pos += length;
      return;
    }
    case 3:
      skipString(readArgument(info, start), start);
      return;
    case 4: {
      const length = readArgument(info, start);
      need(length);
      if (depth >= MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`, start);
      for (let i = 0; i < length; i++) skipValue(depth + 1);
      return;
    }
    case 5:
      skipMap(readArgument(info, start), start, depth);
      return;
    case 6: {
      const tag = readArgument(info, start);
      if (tag !== CID_TAG) fail(`tag ${tag} is not allowed (only tag 42, CID links)`, start);
      checkCidLink();
      return;
    }
    default:
      readSimple(head, info, start);
  }
}

function skipString(length: number, start: number): void {
  need(length);
  // ASCII (nearly every string in practice) is valid UTF-8 as it is; anything else is decoded,
  // which is how readString finds out.
  const end = pos + length;
  for (let i = pos; i < end; i++) {
    if (buf[i]! >= 0x80) {
      try {
        decodeUtf8From(buf, pos, length);
      } catch {
        fail('text string is not valid UTF-8', start);
      }
      break;
    }
  }
  pos = end;
}

function skipMap(count: number, start: number, depth: number): void {
  need(count * 2);
  if (depth >= MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`, start);
  let previousStart = 0;
  let previousLength = -1;
  for (let i = 0; i < count; i++) {
    const keyHead = pos;
    const keyLength = readMapKeyHead();
    const keyStart = pos;
    skipString(keyLength, keyHead);
    checkMapKey(keyHead, keyStart, keyLength, previousStart, previousLength);
    if (watched !== undefined && keyLength === watched.length && bytesAt(keyStart, watched)) sawWatched = true;
    previousStart = keyStart;
    previousLength = keyLength;
    skipValue(depth + 1);
  }
}

/**
 * Encodes a data-model value as canonical DAG-CBOR. Accepts the in-memory form: CID links as
 * CidLinkWrapper or `{$link: string}`, bytes as BytesWrapper or `{$bytes: string}`. Object properties
 * whose value is undefined are omitted, as in JSON.
 */
export function encodeCbor(value: unknown): Uint8Array {
  pathStack.length = 0;
  checkEncodable(value, 0);
  try {
    return encode(value);
  } catch (err) {
    throw new DataModelError('InvalidData', `cannot encode value as DAG-CBOR: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

// Keys and indexes leading to the value being checked. Kept as a stack and only joined into a
// "$.a[0].b" path when something is wrong: building path strings for every node would cost more
// than the check itself.
const pathStack: (string | number)[] = [];

function checkEncodable(value: unknown, depth: number): void {
  switch (typeof value) {
    case 'string':
      if (!isWellFormed(value)) invalid('string contains a lone UTF-16 surrogate (not valid Unicode)');
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isSafeInteger(value)) {
        invalid(
          Number.isInteger(value)
            ? `integer ${value} is beyond the safe integer range`
            : `${describeValue(value)} is not an integer (floats are not allowed)`,
        );
      }
      return;
    case 'object': {
      if (value === null) return;
      if (depth >= MAX_DEPTH) invalid(`nesting deeper than ${MAX_DEPTH} levels`);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          pathStack.push(i);
          if (value[i] === undefined) invalid('undefined is not allowed in arrays');
          checkEncodable(value[i], depth + 1);
          pathStack.pop();
        }
        return;
      }
      if (value instanceof CidLinkWrapper || value instanceof BytesWrapper) return;
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        invalid(`${proto?.constructor?.name ?? 'object'} is not a data-model value (use plain objects)`);
      }
      const object = value as Record<string, unknown>;
      const keys = Object.keys(object);
      if (keys.length === 1) {
        // The in-memory spellings of a CID link and of bytes, as @atcute/cbor's encoder reads them.
        if (keys[0] === '$link' && typeof object.$link === 'string') {
          try {
            parseCid(object.$link);
          } catch {
            invalid(`$link is not a valid CID: ${describeValue(object.$link)}`);
          }
          return;
        }
        if (keys[0] === '$bytes' && typeof object.$bytes === 'string') {
          try {
            fromBase64(object.$bytes);
          } catch {
            invalid('$bytes is not unpadded standard base64');
          }
          return;
        }
      }
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        const item = object[key];
        if (item === undefined) continue;
        if (key === '$link' || key === '$bytes') {
          invalid(`${JSON.stringify(key)} is reserved: it must be the only key, with a string value`);
        }
        if (!isWellFormed(key)) invalid('a map key contains a lone UTF-16 surrogate');
        pathStack.push(key);
        checkEncodable(item, depth + 1);
        pathStack.pop();
      }
      return;
    }
    default:
      invalid(`${typeof value} is not a data-model value`);
  }
}

function invalid(message: string): never {
  let path = '$';
  for (const step of pathStack) path += typeof step === 'number' ? `[${step}]` : `.${step}`;
  pathStack.length = 0;
  throw new DataModelError('InvalidData', `at ${path}: ${message}`);
}

// String.prototype.isWellFormed is ES2024; the workspace's lib setting is ES2023.
const isWellFormed = (text: string): boolean => (text as unknown as { isWellFormed(): boolean }).isWellFormed();
