/**
 * MST key rules (https://atproto.com/specs/repository#mst-structure): which strings may be keys,
 * how high in the tree a key sits, and the shared-prefix length used by node prefix compression.
 *
 * A key's height is the number of leading zero bits of SHA-256(key), halved and rounded down:
 * that gives an average fanout of 4. The height is what makes the tree shape depend only on the
 * set of keys, never on insertion order.
 */
import { sha256 } from '../cid.ts';
import { AtprotoError } from '../errors.ts';

export class MstError extends AtprotoError {}

/** Longest key the reference implementation accepts (bytes; keys are ASCII). */
export const MST_KEY_MAX_LENGTH = 1024;

// Characters allowed on either side of the single `/`: the record-key alphabet, which also
// covers NSIDs (letters, digits, `.`, `-`).
function isKeyChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x5f || // _
    c === 0x7e || // ~
    c === 0x2d || // -
    c === 0x3a || // :
    c === 0x2e // .
  );
}

/**
 * Why `key` is not a valid MST key, or null when it is. MST keys are `<collection>/<record-key>`:
 * exactly one `/`, both sides non-empty, ASCII from the record-key alphabet, at most 1024 bytes.
 * (The writer additionally checks that the collection is an NSID and the record key valid.)
 */
export function findMstKeyProblem(key: string): string | null {
  const n = key.length;
  if (n === 0) return 'empty key';
  if (n > MST_KEY_MAX_LENGTH) return `key longer than ${MST_KEY_MAX_LENGTH} bytes (${n})`;
  let slash = -1;
  for (let i = 0; i < n; i++) {
    const c = key.charCodeAt(i);
    if (c === 0x2f) {
      if (slash !== -1) return `key ${JSON.stringify(key.slice(0, 100))} has more than one "/"`;
      slash = i;
    } else if (!isKeyChar(c)) {
      return `key ${JSON.stringify(key.slice(0, 100))} has a character not allowed at index ${i}`;
    }
  }
  if (slash === -1) return `key ${JSON.stringify(key.slice(0, 100))} is not of the form <collection>/<record-key>`;
  if (slash === 0 || slash === n - 1)
    return `key ${JSON.stringify(key.slice(0, 100))} has an empty collection or record key`;
  return null;
}

export function isValidMstKey(key: string): boolean {
  return findMstKeyProblem(key) === null;
}

export function assertValidMstKey(key: string): void {
  const problem = findMstKeyProblem(key);
  if (problem !== null) throw new MstError('InvalidKey', problem);
}

/** ASCII (or any Latin-1) string to bytes; MST keys are ASCII, so this is their UTF-8 too. */
export function keyToBytes(key: string): Uint8Array {
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i);
  return out;
}

/**
 * Height of a key in the tree: leading zero bits of SHA-256 of its UTF-8 bytes, divided by 2.
 * Works for any string (the interop vectors include non-repo keys such as "" and "blue").
 */
export function keyHeight(key: string): number {
  return heightOfDigest(sha256(new TextEncoder().encode(key)));
}

/** Height of an ASCII key, without a TextEncoder round trip (the hot path of the writer). */
export function asciiKeyHeight(key: string): number {
  return heightOfDigest(sha256(keyToBytes(key)));
}

/** Leading zero bits of a key's SHA-256 digest, counted in pairs: the MST fanout is 4 (2 bits a level). */
function heightOfDigest(digest: Uint8Array): number {
  let zeros = 0;
  for (let i = 0; i < digest.length; i++) {
    const byte = digest[i] as number;
    if (byte === 0) {
      zeros += 8;
      continue;
    }
    zeros += Math.clz32(byte) - 24;
    break;
  }
  return zeros >> 1;
}

/** Length of the common prefix of two keys, in bytes of their UTF-8 encoding. */
export function commonPrefixLength(a: string, b: string): number {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  const n = Math.min(x.length, y.length);
  let i = 0;
  while (i < n && x[i] === y[i]) i++;
  return i;
}

/** Common prefix length of two ASCII keys (string indices are byte offsets). */
export function asciiCommonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}
