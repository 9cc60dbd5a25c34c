/**
 * Verified import of a repository CAR (com.atproto.repo.importRepo, migrations, backups).
 *
 * Blocks may come in any order and repeat. Each is hash-checked by the CAR reader and staged in a
 * block store (in memory by default; the PDS passes a staging store that spills to disk so a
 * repository of any size fits). Then the repository is verified from its root before anything is
 * handed out: the commit's shape, DID and signature; every MST node present, canonical, well
 * formed, with valid keys in strictly increasing order at the layer their hash gives them; every
 * record present and canonical DAG-CBOR. Only a repository that passes all of it is returned, so a
 * caller that writes records as it iterates `records()` never stores half of a bad repository.
 *
 * Two steps for callers that store what they verify: `stageRepo` reads the CAR and checks the
 * commit (the asynchronous part), then `StagedRepo.verifyTree` walks the tree synchronously and
 * hands each node and record to a visitor as soon as it is verified. Run inside a database
 * transaction that is rolled back when the walk throws, that reads every block exactly once and
 * stores the repository in the same pass, and still nothing of a bad repository is ever committed.
 *
 * The walk is depth-first and keeps nothing but the current path, so verification memory does
 * not grow with the repository (only the staging store does, and that is the caller's choice).
 */
import { CODEC_DAG_CBOR, type Cid, formatCid } from '../cid.ts';
import { CarError, type CarSource, readCar } from '../car.ts';
import { type FoundBlobRef, findBlobRefsInCbor } from '../data/blob.ts';
import { checkCbor } from '../data/cbor.ts';
import { asciiKeyHeight, MstError } from '../mst/keys.ts';
import { decodeNode, type NodeContent } from '../mst/node.ts';
import { type BlockReader, type BlockStore, MemoryBlockStore } from './block-store.ts';
import { type Commit, decodeCommit, verifyCommitSignature } from './commit.ts';
import { RepoError, type RepoErrorCode } from './errors.ts';
import { treeBlocks } from './export.ts';

/** Largest block accepted (records are limited to 1 MiB; nodes and CIDs need a little more). */
export const MAX_IMPORT_BLOCK_SIZE = 2 * 1024 * 1024;
/** CBOR major type of a map: a valid value whose first byte has it is a map (a record must be one). */
const CBOR_MAP = 5;
/** Deepest MST accepted; real trees are about log4(records) deep, so this only stops abuse. */
const MAX_TREE_DEPTH = 64;

export interface ImportOptions {
  /** The DID the repository must belong to. */
  did?: string;
  /**
   * The account's signing key(s) as did:key; the commit must be signed by one of them.
   * `null` skips the signature check (only for trusted input, e.g. a local backup). A promise is
   * awaited only once the CAR is read, so looking the keys up can overlap with receiving it.
   */
  signingKeys: string | readonly string[] | null | PromiseLike<string | readonly string[]>;
  /** Where blocks are staged while verifying. Default: a new MemoryBlockStore. */
  staging?: BlockStore;
  maxBlockSize?: number;
  /** Reject repositories with more records than this. */
  maxRecords?: number;
}

export interface ImportedRecord {
  /** `<collection>/<rkey>` */
  path: string;
  collection: string;
  rkey: string;
  cid: Cid;
  bytes: Uint8Array;
}

export interface VerifiedRepo {
  did: string;
  commitCid: Cid;
  commit: Commit;
  rev: string;
  /** MST root. */
  data: Cid;
  recordCount: number;
  nodeCount: number;
  /** The staging store holding every block (including any the repository does not reference). */
  store: BlockReader;
  /** The records in key order, read again from the staging store (already verified). */
  records(): Generator<ImportedRecord>;
  /** The blocks the repository references (commit, nodes, records), in export order. */
  blocks(): Generator<{ cid: Cid; bytes: Uint8Array }>;
}

/** What `StagedRepo.verifyTree` hands over, each as soon as it is verified. */
export interface TreeVisitor {
  /** An MST node, in pre-order (a node before its subtrees). */
  node?(cid: Cid, bytes: Uint8Array): void;
  /** A record, in key order, with the blobs it references (each once). */
  record?(record: ImportedRecord, blobRefs: FoundBlobRef[]): void;
}

/**
 * A repository whose CAR is staged and whose commit is checked (shape, DID, signature), but whose
 * tree is not verified yet: nothing read from it counts until `verifyTree` has returned.
 */
export interface StagedRepo {
  did: string;
  commitCid: Cid;
  commitBytes: Uint8Array;
  commit: Commit;
  rev: string;
  /** MST root. */
  data: Cid;
  store: BlockReader;
  /**
   * Verifies the whole tree (synchronously), handing every node and record to `visitor` once it
   * has passed its checks. Throws a RepoError at the first problem, possibly after the visitor
   * has seen part of the tree: a visitor that stores what it sees must be able to undo it (a
   * transaction around the call).
   */
  verifyTree(visitor?: TreeVisitor): { records: number; nodes: number };
}

const CAR_CODES: Record<string, RepoErrorCode> = {
  CarTruncated: 'TruncatedCar',
  CarHashMismatch: 'BadBlockHash',
  CarBlockTooLarge: 'BlockTooLarge',
};

function fromCarError(err: unknown): unknown {
  if (err instanceof CarError) return new RepoError(CAR_CODES[err.code] ?? 'InvalidCar', err.message, { cause: err });
  return err;
}

/** Reads, stages and verifies a repository CAR; throws a RepoError naming the first problem. */
export async function importRepo(source: CarSource, options: ImportOptions): Promise<VerifiedRepo> {
  return verified(await stageRepo(source, options));
}

/** Verifies a repository already staged in `store`, rooted at the commit `commitCid`. */
export async function verifyRepo(
  store: BlockReader,
  commitCid: Cid,
  options: Omit<ImportOptions, 'staging'>,
): Promise<VerifiedRepo> {
  return verified(await checkCommit(store, commitCid, options));
}

/**
 * Reads and stages a repository CAR and checks its commit; the tree is verified by the caller
 * through `verifyTree`. Throws a RepoError naming the first problem.
 */
export async function stageRepo(source: CarSource, options: ImportOptions): Promise<StagedRepo> {
  const staging = options.staging ?? new MemoryBlockStore();
  let root: Cid;
  try {
    const car = await readCar(source, {
      maxBlockSize: options.maxBlockSize ?? MAX_IMPORT_BLOCK_SIZE + 64,
      requireRoot: true,
    });
    root = car.roots[0] as Cid;
    await car.forEachBlock((block) => staging.putBlock(block.cid, block.bytes));
  } catch (err) {
    throw fromCarError(err);
  }
  return checkCommit(staging, root, options);
}

/** Checks the commit at `commitCid` in `store`: a commit, for the expected DID, signed by its key. */
async function checkCommit(
  store: BlockReader,
  commitCid: Cid,
  options: Omit<ImportOptions, 'staging'>,
): Promise<StagedRepo> {
  const commitBytes = store.getBlock(commitCid);
  if (commitBytes === undefined)
    throw new RepoError('WrongRoot', `the CAR root ${formatCid(commitCid)} is not among its blocks`);
  let commit: Commit;
  try {
    commit = decodeCommit(commitBytes);
  } catch (err) {
    throw new RepoError(
      'WrongRoot',
      `the CAR root ${formatCid(commitCid)} is not a valid commit: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (options.did !== undefined && commit.did !== options.did) {
    throw new RepoError('WrongDid', `the repository belongs to ${commit.did}, not ${options.did}`);
  }
  const signingKeys = await options.signingKeys;
  if (signingKeys !== null && !(await verifyCommitSignature(commit, signingKeys))) {
    throw new RepoError(
      'BadSignature',
      `the commit ${formatCid(commitCid)} is not signed by the account's signing key`,
    );
  }
  const maxRecords = options.maxRecords ?? Number.POSITIVE_INFINITY;
  return {
    did: commit.did,
    commitCid,
    commitBytes,
    commit,
    rev: commit.rev,
    data: commit.data,
    store,
    verifyTree(visitor = {}) {
      const walker = new TreeVerifier(store, maxRecords, visitor);
      walker.verify(commit.data);
      return { records: walker.records, nodes: walker.nodes };
    },
  };
}

/** Verifies the tree of a staged repository and describes the result. */
function verified(staged: StagedRepo): VerifiedRepo {
  const { store, commitCid, commitBytes, commit } = staged;
  const counts = staged.verifyTree();
  return {
    did: staged.did,
    commitCid,
    commit,
    rev: staged.rev,
    data: staged.data,
    recordCount: counts.records,
    nodeCount: counts.nodes,
    store,
    *records() {
      for (const block of treeRecords(store, commit.data)) yield block;
    },
    *blocks() {
      yield { cid: commitCid, bytes: commitBytes };
      yield* treeBlocks(store, commit.data);
    },
  };
}

function* treeRecords(store: BlockReader, cid: Cid): Generator<ImportedRecord> {
  const node = decodeNode(store.getBlock(cid) as Uint8Array);
  if (node.left !== null) yield* treeRecords(store, node.left);
  for (let i = 0; i < node.keys.length; i++) {
    const path = node.keys[i] as string;
    const slash = path.indexOf('/');
    const value = node.values[i] as Cid;
    yield {
      path,
      collection: path.slice(0, slash),
      rkey: path.slice(slash + 1),
      cid: value,
      bytes: store.getBlock(value) as Uint8Array,
    };
    const right = node.rights[i];
    if (right) yield* treeRecords(store, right);
  }
}

class TreeVerifier {
  readonly store: BlockReader;
  readonly maxRecords: number;
  readonly visitor: TreeVisitor;
  records = 0;
  nodes = 0;
  lastKey = '';

  constructor(store: BlockReader, maxRecords: number, visitor: TreeVisitor) {
    this.store = store;
    this.maxRecords = maxRecords;
    this.visitor = visitor;
  }

  verify(root: Cid): void {
    this.#node(root, null, 0, true);
  }

  // `layer` is the layer the parent implies (null for the root, whose layer its keys give).
  #node(cid: Cid, layer: number | null, depth: number, isRoot: boolean): void {
    if (depth > MAX_TREE_DEPTH) throw new RepoError('InvalidNode', `the MST is deeper than ${MAX_TREE_DEPTH} levels`);
    if (cid.codec !== CODEC_DAG_CBOR) throw new RepoError('InvalidNode', `MST node ${formatCid(cid)} is not DAG-CBOR`);
    const bytes = this.store.getBlock(cid);
    if (bytes === undefined) throw new RepoError('MissingNode', `MST node ${formatCid(cid)} is missing from the CAR`);
    let node: NodeContent;
    try {
      node = decodeNode(bytes, true);
    } catch (err) {
      if (err instanceof MstError) {
        const code = err.code as RepoErrorCode;
        throw new RepoError(code, `MST node ${formatCid(cid)}: ${err.message}`, { cause: err });
      }
      throw err;
    }
    this.nodes++;
    if (node.keys.length === 0 && node.left === null && !isRoot) {
      throw new RepoError('InvalidNode', `MST node ${formatCid(cid)} is empty but is not the root`);
    }
    let here = layer;
    for (const key of node.keys) {
      const height = asciiKeyHeight(key);
      if (here === null) here = height;
      else if (height !== here) {
        throw new RepoError(
          'WrongLayer',
          `key ${key} has height ${height} but sits in MST node ${formatCid(cid)} at layer ${here}`,
        );
      }
    }
    const childLayer = here === null ? null : here - 1;
    if (childLayer !== null && childLayer < 0 && (node.left !== null || node.rights.some((r) => r !== null))) {
      throw new RepoError('WrongLayer', `MST node ${formatCid(cid)} is at layer 0 but has subtrees`);
    }
    this.visitor.node?.(cid, bytes);
    if (node.left !== null) this.#node(node.left, childLayer, depth + 1, false);
    for (let i = 0; i < node.keys.length; i++) {
      const key = node.keys[i] as string;
      // Keys within a node are checked by the decoder; this catches a subtree out of place.
      if (this.records > 0 && key <= this.lastKey) {
        throw new RepoError('UnsortedKeys', `MST keys out of order: ${key} comes after ${this.lastKey}`);
      }
      this.lastKey = key;
      this.#record(key, node.values[i] as Cid);
      const right = node.rights[i];
      if (right) this.#node(right, childLayer, depth + 1, false);
    }
  }

  #record(key: string, cid: Cid): void {
    if (++this.records > this.maxRecords)
      throw new RepoError('TooManyRecords', `the repository has more than ${this.maxRecords} records`);
    const bytes = this.store.getBlock(cid);
    if (bytes === undefined)
      throw new RepoError('MissingRecord', `record ${key} (${formatCid(cid)}) is missing from the CAR`);
    if (cid.codec !== CODEC_DAG_CBOR) throw new RepoError('InvalidNode', `record ${key} is not DAG-CBOR`);
    let blobRefs: FoundBlobRef[];
    try {
      // Checked in place; only a record that can hold a blob reference is decoded to find it, and
      // only when a visitor wants the references.
      blobRefs = this.visitor.record ? findBlobRefsInCbor(bytes) : (checkCbor(bytes), []);
    } catch (err) {
      throw new RepoError('NonCanonicalCbor', `record ${key} is not canonical DAG-CBOR: ${(err as Error).message}`);
    }
    if (bytes[0]! >> 5 !== CBOR_MAP) throw new RepoError('NonCanonicalCbor', `record ${key} is not a DAG-CBOR map`);
    if (this.visitor.record) {
      const slash = key.indexOf('/');
      this.visitor.record(
        { path: key, collection: key.slice(0, slash), rkey: key.slice(slash + 1), cid, bytes },
        blobRefs,
      );
    }
  }
}
