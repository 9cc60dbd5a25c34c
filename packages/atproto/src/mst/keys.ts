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

/**
 * Height of an ASCII key, without a TextEncoder round trip (the hot path of the writer, and of
 * an import, which checks the height of every key). A key that fits one SHA-256 block (55 bytes
 * or fewer: nearly all) is hashed right here: for inputs this small, calling out to the native
 * hash costs several times the hashing itself.
 */
export function asciiKeyHeight(key: string): number {
  if (key.length <= MAX_ONE_BLOCK_MESSAGE) {
    const firstWord = sha256FirstWordOfOneBlock(key);
    // Only the first 32 bits are computed; a key whose hash starts with 32 zero bits (about
    // one in four billion) is hashed in full to count on.
    if (firstWord !== 0) return Math.clz32(firstWord) >> 1;
  }
  return heightOfDigest(sha256(keyToBytes(key)));
}

/** Longest message that SHA-256 pads into a single 64-byte block (55 bytes + 0x80 + 8-byte length). */
const MAX_ONE_BLOCK_MESSAGE = 55;

// SHA-256 round constants (FIPS 180-4, 4.2.2) and initial hash value (5.3.3).
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
const H = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
/** The message schedule, reused: hashing is synchronous. */
const W = new Int32Array(64);

/**
 * The first 32-bit word of SHA-256 of a string of at most 55 single-byte characters (each
 * character's low byte, as keyToBytes takes it): one compression of the one padded block.
 */
function sha256FirstWordOfOneBlock(message: string): number {
  const n = message.length;
  W.fill(0, 0, 16);
  for (let i = 0; i < n; i++) W[i >> 2]! |= (message.charCodeAt(i) & 0xff) << (24 - 8 * (i & 3));
  W[n >> 2]! |= 0x80 << (24 - 8 * (n & 3));
  W[15] = n * 8;
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15]!;
    const y = W[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
  }
  let a = H[0]!;
  let b = H[1]!;
  let c = H[2]!;
  let d = H[3]!;
  let e = H[4]!;
  let f = H[5]!;
  let g = H[6]!;
  let h = H[7]!;
  for (let i = 0; i < 64; i++) {
    const sum1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + sum1 + ((e & f) ^ (~e & g)) + K[i]! + W[i]!) | 0;
    const sum0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (sum0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  return (a + H[0]!) | 0;
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
