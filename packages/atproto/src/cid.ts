/**
 * Content identifiers, the way atproto uses them: CIDv1, SHA-256, and either the DAG-CBOR codec
 * (records, MST nodes, commits) or the raw codec (blobs). The `Cid` type is @atcute/cid's, shared
 * by every module so CIDs pass between them without conversion.
 */
import * as CID from '@atcute/cid';
import { sha256 } from '#sha256';
import { AtprotoError } from './errors.ts';

export type Cid = CID.Cid;
export const CODEC_DAG_CBOR = 0x71;
export const CODEC_RAW = 0x55;

export class CidError extends AtprotoError {}

/** CID of a DAG-CBOR block (the bytes must already be the canonical encoding). */
export function cidForCbor(bytes: Uint8Array): Cid {
  return CID.fromDigest(CODEC_DAG_CBOR, sha256(bytes));
}

/** CID of raw bytes, as used for blobs. */
export function cidForRaw(bytes: Uint8Array): Cid {
  return CID.fromDigest(CODEC_RAW, sha256(bytes));
}

/** CID from an already computed SHA-256 digest (streamed blob hashing). */
export function cidFromDigest(codec: typeof CODEC_DAG_CBOR | typeof CODEC_RAW, digest: Uint8Array): Cid {
  return CID.fromDigest(codec, digest);
}

export function formatCid(cid: Cid): string {
  return CID.toString(cid);
}

/** Parses a base32 CID string; throws CidError naming the input when it is not one. */
export function parseCid(text: string): Cid {
  try {
    const cid = CID.fromString(text);
    if (cid.version !== 1) throw new Error('not CIDv1');
    return cid;
  } catch (err) {
    throw new CidError('InvalidCid', `not a valid CID: ${JSON.stringify(text.slice(0, 100))}`, { cause: err });
  }
}

export function cidFromBytes(bytes: Uint8Array): Cid {
  try {
    return CID.decode(bytes);
  } catch (err) {
    throw new CidError('InvalidCid', 'bytes are not a valid binary CID', { cause: err });
  }
}

/** A binary CID as atproto uses it: version, codec, hash code, digest length, 32-byte SHA-256. */
export const ATPROTO_CID_LENGTH = 36;

/**
 * Why the binary CID at `bytes[at]` is not one atproto uses (CIDv1, DAG-CBOR or raw, 32-byte
 * SHA-256), or null when it is. Reads only the 4-byte prefix; the caller has made sure all
 * ATPROTO_CID_LENGTH bytes are there. The CAR reader, the MST node reader and the CBOR decoder
 * all check CIDs on their hottest paths, so this is a few comparisons, not a parse.
 */
export function atprotoCidProblem(bytes: Uint8Array, at: number): string | null {
  return bytes[at] !== 1
    ? `CID version ${bytes[at]} is not supported (expected CIDv1)`
    : bytes[at + 1] !== CODEC_DAG_CBOR && bytes[at + 1] !== CODEC_RAW
      ? `CID codec 0x${bytes[at + 1]!.toString(16)} is not DAG-CBOR or raw`
      : bytes[at + 2] !== 0x12 || bytes[at + 3] !== 32
        ? 'CID hash is not a 32-byte SHA-256'
        : null;
}

/**
 * The Cid over ATPROTO_CID_LENGTH bytes that atprotoCidProblem accepted, built directly rather
 * than parsed again. It views `bytes`: callers copy first when the CID must outlive them.
 */
export function cidFromCheckedBytes(bytes: Uint8Array): Cid {
  return { version: 1, codec: bytes[1]!, digest: { codec: 0x12, contents: bytes.subarray(4) }, bytes };
}

export function cidEquals(a: Cid, b: Cid): boolean {
  return cidBytesEqual(a.bytes, b.bytes);
}

/**
 * Whether two binary CIDs are the same. Compared from the end: CIDs share their first bytes
 * (version, codec, hash type and length), and differ in the digest.
 */
export function cidBytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = a.length - 1; i >= 0; i--) if (a[i] !== b[i]) return false;
  return true;
}

/** True when `bytes` hash to `cid` (same codec, same SHA-256 digest). */
export function cidMatches(cid: Cid, bytes: Uint8Array): boolean {
  if (cid.digest.codec !== 0x12) return false;
  const digest = sha256(bytes);
  const expected = cid.digest.contents;
  if (expected.length !== digest.length) return false;
  for (let i = 0; i < digest.length; i++) if (digest[i] !== expected[i]) return false;
  return true;
}

export { sha256 };
