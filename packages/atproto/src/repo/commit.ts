/**
 * Signed commits, version 3 (https://atproto.com/specs/repository#commit-objects):
 * `{did, version: 3, data, rev, prev: null, sig}`. The signature covers the canonical DAG-CBOR
 * encoding of the commit without `sig`, made with the account's signing key (the `#atproto` key
 * of its DID document). `prev` stays null: v3 dropped the commit chain but kept the field.
 */
import { decode, encode, fromBytes, isBytes, isCidLink, toBytes, toCidLink, type CidLink } from '@atcute/cbor';
import { type Cid, cidForCbor, cidFromBytes } from '../cid.ts';
import { type SigningKey, verifySignature } from '../crypto.ts';
import { isValidDid } from '../syntax/did.ts';
import { isValidTid } from '../syntax/tid.ts';
import { RepoError } from './errors.ts';

export interface Commit {
  did: string;
  version: 3;
  /** Root CID of the MST. */
  data: Cid;
  rev: string;
  /** Always null in commits we write; older v3 commits may still point at their predecessor. */
  prev: Cid | null;
  sig: Uint8Array;
}

export interface UnsignedCommit {
  did: string;
  data: Cid;
  rev: string;
}

/** A commit with its block: what gets stored, exported and sent on the firehose. */
export interface CommitBlock {
  cid: Cid;
  bytes: Uint8Array;
  commit: Commit;
}

function unsignedBytes(c: { did: string; data: Cid; rev: string; prev?: Cid | null }): Uint8Array {
  const prev = c.prev ? toCidLink(c.prev) : null;
  return encode({ did: c.did, version: 3, data: toCidLink(c.data), rev: c.rev, prev });
}

export async function signCommit(unsigned: UnsignedCommit, key: SigningKey): Promise<CommitBlock> {
  const sig = await key.sign(unsignedBytes(unsigned));
  const commit: Commit = { did: unsigned.did, version: 3, data: unsigned.data, rev: unsigned.rev, prev: null, sig };
  const { cid, bytes } = encodeCommit(commit);
  return { cid, bytes, commit };
}

export function encodeCommit(commit: Commit): { cid: Cid; bytes: Uint8Array } {
  const bytes = encode({
    did: commit.did,
    version: 3,
    data: toCidLink(commit.data),
    rev: commit.rev,
    prev: commit.prev ? toCidLink(commit.prev) : null,
    sig: toBytes(commit.sig),
  });
  return { cid: cidForCbor(bytes), bytes };
}

/**
 * Decodes a commit block and checks its v3 shape. (`prev` may carry a CID in commits written by
 * older software; it is signed over as null-or-absent only in v3, so anything but v3 is refused.)
 */
export function decodeCommit(bytes: Uint8Array): Commit {
  let data: unknown;
  try {
    data = decode(bytes);
  } catch (err) {
    throw new RepoError('NonCanonicalCbor', `commit block is not canonical DAG-CBOR: ${(err as Error).message}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new RepoError('InvalidCommit', 'commit block is not a map');
  }
  const obj = data as Record<string, unknown>;
  if (obj.version !== 3) {
    throw new RepoError('InvalidCommit', `commit version must be 3 (got ${JSON.stringify(obj.version)})`);
  }
  if (!isValidDid(obj.did)) throw new RepoError('InvalidCommit', 'commit did is not a valid DID');
  if (typeof obj.rev !== 'string' || !isValidTid(obj.rev))
    throw new RepoError('InvalidCommit', 'commit rev is not a TID');
  if (!isCidLink(obj.data)) throw new RepoError('InvalidCommit', 'commit data is not a CID link');
  if (obj.prev !== null && !isCidLink(obj.prev))
    throw new RepoError('InvalidCommit', 'commit prev is neither null nor a CID link');
  if (Object.keys(obj).length !== 6)
    throw new RepoError('InvalidCommit', 'commit has fields other than did, version, data, rev, prev, sig');
  if (!isBytes(obj.sig)) throw new RepoError('InvalidCommit', 'commit sig is not bytes');
  return {
    did: obj.did,
    version: 3,
    data: linkToCid(obj.data, 'data'),
    rev: obj.rev,
    prev: obj.prev === null ? null : linkToCid(obj.prev, 'prev'),
    sig: fromBytes(obj.sig),
  };
}

function linkToCid(link: unknown, field: string): Cid {
  try {
    return cidFromBytes((link as CidLink & { bytes: Uint8Array }).bytes);
  } catch {
    throw new RepoError('InvalidCommit', `commit ${field} is not a valid CID`);
  }
}

/** True when `commit.sig` was made by one of `didKeys` (did:key strings) over the unsigned commit. */
export async function verifyCommitSignature(commit: Commit, didKeys: string | readonly string[]): Promise<boolean> {
  const keys = typeof didKeys === 'string' ? [didKeys] : didKeys;
  const bytes = unsignedBytes(commit);
  for (const key of keys) if (await verifySignature(key, bytes, commit.sig)) return true;
  return false;
}
