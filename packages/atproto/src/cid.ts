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

export function cidEquals(a: Cid, b: Cid): boolean {
  const x = a.bytes;
  const y = b.bytes;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
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
