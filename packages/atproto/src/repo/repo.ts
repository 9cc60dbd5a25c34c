/**
 * A repository at one commit, and the writer that turns a batch of record writes into the next
 * signed commit.
 *
 * `Repo` is an immutable snapshot: `applyWrites` does not touch storage, it returns everything
 * the caller must persist in one transaction (new blocks tagged with the new rev, CIDs no longer
 * referenced) together with what the firehose needs (ops with `prev`, `prevData`, and the proof
 * blocks a consumer uses to verify the commit by inversion) and the next snapshot. The snapshot's
 * tree keeps the nodes it has loaded, so a long-lived `Repo` doubles as the node cache.
 */
import { encode } from '@atcute/cbor';
import { type Cid, cidEquals, cidForCbor, formatCid } from '../cid.ts';
import type { SigningKey } from '../crypto.ts';
import { diffTrees } from '../mst/diff.ts';
import { MstError } from '../mst/keys.ts';
import { coveringProof } from '../mst/proof.ts';
import { Mst } from '../mst/tree.ts';
import { isValidNsid } from '../syntax/nsid.ts';
import { isValidRecordKey } from '../syntax/record-key.ts';
import { compareTid, nextTid } from '../tid.ts';
import { BlockMap, type BlockReader, cidKey } from './block-store.ts';
import { type Commit, decodeCommit, signCommit } from './commit.ts';
import { RepoError } from './errors.ts';

/** Most writes one commit may carry (the firehose's limit on ops per #commit). */
export const MAX_WRITES_PER_COMMIT = 200;

/**
 * One record write. `record` is either the record's canonical DAG-CBOR bytes (what the PDS has
 * after validating the JSON) or a data-model value (CID links as `CidLink`, bytes as `Bytes`)
 * that is encoded here.
 */
export type RecordWrite =
  | { action: 'create' | 'update'; collection: string; rkey: string; record: Uint8Array | object }
  | { action: 'delete'; collection: string; rkey: string };

/** A record operation as the firehose carries it: `prev` is the CID being replaced or deleted. */
export interface RepoOp {
  action: 'create' | 'update' | 'delete';
  /** `<collection>/<rkey>` */
  path: string;
  cid: Cid | null;
  prev: Cid | null;
}

export interface CommitResult {
  did: string;
  /** CID of the new commit block. */
  cid: Cid;
  rev: string;
  commit: Commit;
  commitBytes: Uint8Array;
  /** Rev of the previous commit (the firehose's `since`); null for the first commit. */
  since: string | null;
  /** CID of the previous commit; null for the first commit. */
  prevCommit: Cid | null;
  /** MST root after the commit. */
  data: Cid;
  /** MST root before the commit (the firehose's `prevData`); null for the first commit. */
  prevData: Cid | null;
  /** Every block this commit adds (commit, new MST nodes, new records): persist with `rev`. */
  newBlocks: BlockMap;
  /**
   * Blocks the repository no longer references (old commit, replaced nodes, replaced records).
   * Like the reference, a record CID is listed when the key it leaves was its only use in this
   * commit; if two keys hold byte-identical records, check the records index before deleting.
   */
  removedCids: Cid[];
  ops: RepoOp[];
  /** The blocks a #commit event must carry: commit, new records, and covering proofs of each op. */
  proofBlocks: BlockMap;
  /** The repository after this commit (read records through it once `newBlocks` are persisted). */
  repo: Repo;
}

export interface CommitOptions {
  /** Use this rev instead of minting one (it must still be greater than the current rev). */
  rev?: string;
}

function encodeRecord(record: Uint8Array | object): { cid: Cid; bytes: Uint8Array } {
  let bytes: Uint8Array;
  if (record instanceof Uint8Array) bytes = record;
  else {
    try {
      bytes = encode(record);
    } catch (err) {
      throw new RepoError('InvalidWrite', `record cannot be encoded as DAG-CBOR: ${(err as Error).message}`);
    }
  }
  return { cid: cidForCbor(bytes), bytes };
}

function checkWrite(write: RecordWrite, index: number): string {
  if (write === null || typeof write !== 'object')
    throw new RepoError('InvalidWrite', `write ${index} is not an object`);
  if (write.action !== 'create' && write.action !== 'update' && write.action !== 'delete') {
    throw new RepoError('InvalidWrite', `write ${index} has an unknown action ${JSON.stringify(write.action)}`);
  }
  if (!isValidNsid(write.collection)) {
    throw new RepoError(
      'InvalidWrite',
      `write ${index}: collection ${JSON.stringify(write.collection)} is not a valid NSID`,
    );
  }
  if (!isValidRecordKey(write.rkey)) {
    throw new RepoError('InvalidWrite', `write ${index}: record key ${JSON.stringify(write.rkey)} is not valid`);
  }
  if (write.action !== 'delete') {
    const record = (write as { record?: unknown }).record;
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      throw new RepoError('InvalidWrite', `write ${index}: record must be an object or its DAG-CBOR bytes`);
    }
  }
  return `${write.collection}/${write.rkey}`;
}

function mstToRepoError(err: unknown): unknown {
  if (err instanceof MstError) {
    const code =
      err.code === 'RecordExists' || err.code === 'RecordNotFound' || err.code === 'InvalidKey'
        ? err.code
        : 'MissingBlock';
    return new RepoError(code === 'InvalidKey' ? 'InvalidWrite' : code, err.message, { cause: err });
  }
  return err;
}

interface PreviousState {
  store: BlockReader;
  did: string;
  tree: Mst;
  /** null when building the first commit. */
  commitCid: Cid | null;
  rev: string | null;
}

async function buildCommit(
  prev: PreviousState,
  writes: readonly RecordWrite[],
  key: SigningKey,
  options: CommitOptions,
): Promise<CommitResult> {
  if (!Array.isArray(writes)) throw new RepoError('InvalidWrite', 'writes must be an array');
  if (writes.length > MAX_WRITES_PER_COMMIT) {
    throw new RepoError(
      'TooManyWrites',
      `a commit carries at most ${MAX_WRITES_PER_COMMIT} writes (got ${writes.length})`,
    );
  }
  const paths = new Set<string>();
  const records = new BlockMap();
  const ops: RepoOp[] = [];
  let tree = prev.tree;
  try {
    for (const [index, write] of writes.entries()) {
      const path = checkWrite(write, index);
      if (paths.has(path)) throw new RepoError('DuplicateWrite', `${path} is written more than once in one commit`);
      paths.add(path);
      if (write.action === 'delete') {
        const old = tree.get(path);
        if (old === null) throw new RepoError('RecordNotFound', `cannot delete ${path}: there is no such record`);
        tree = tree.delete(path);
        ops.push({ action: 'delete', path, cid: null, prev: old });
        continue;
      }
      const { cid, bytes } = encodeRecord(write.record);
      records.set(cid, bytes);
      if (write.action === 'create') {
        tree = tree.add(path, cid);
        ops.push({ action: 'create', path, cid, prev: null });
      } else {
        const old = tree.get(path);
        if (old === null) throw new RepoError('RecordNotFound', `cannot update ${path}: there is no such record`);
        tree = tree.update(path, cid);
        ops.push({ action: 'update', path, cid, prev: old });
      }
    }
  } catch (err) {
    throw mstToRepoError(err);
  }

  const { root, blocks: freshNodes } = tree.finalize();
  const diff = diffTrees(prev.commitCid === null ? null : prev.tree, tree, freshNodes);
  const newBlocks = diff.newNodes;
  const removedCids: Cid[] = [...diff.removedNodes];

  // Record blocks: a CID that leaves the tree is removed unless it also enters it (same content
  // moved or re-written); one that enters is new unless it was already referenced.
  const entering = new Map<string, Cid>();
  const leaving = new Map<string, Cid>();
  for (const op of diff.ops) {
    if (op.cid) entering.set(cidKey(op.cid), op.cid);
    if (op.prev) leaving.set(cidKey(op.prev), op.prev);
  }
  const proofBlocks = new BlockMap();
  for (const [k, cid] of entering) {
    if (leaving.has(k)) continue;
    const bytes = records.get(cid);
    if (bytes === undefined) continue; // already stored (content shared with an existing record)
    newBlocks.set(cid, bytes);
    proofBlocks.set(cid, bytes);
  }
  for (const [k, cid] of leaving) if (!entering.has(k)) removedCids.push(cid);

  if (prev.commitCid === null) {
    for (const block of newBlocks.entries()) proofBlocks.set(block.cid, block.bytes);
  } else {
    for (const path of paths) coveringProof(tree, path, proofBlocks, freshNodes);
  }

  let rev: string;
  if (options.rev !== undefined) {
    rev = options.rev;
    if (prev.rev !== null && compareTid(rev, prev.rev) <= 0) {
      throw new RepoError('StaleRev', `rev ${rev} is not greater than the current rev ${prev.rev}`);
    }
  } else {
    rev = nextTid(prev.rev ?? undefined);
  }
  const signed = await signCommit({ did: prev.did, data: root, rev }, key);
  newBlocks.set(signed.cid, signed.bytes);
  proofBlocks.set(signed.cid, signed.bytes);
  if (prev.commitCid !== null && !cidEquals(prev.commitCid, signed.cid)) removedCids.push(prev.commitCid);

  return {
    did: prev.did,
    cid: signed.cid,
    rev,
    commit: signed.commit,
    commitBytes: signed.bytes,
    since: prev.rev,
    prevCommit: prev.commitCid,
    data: root,
    prevData: prev.commitCid === null ? null : prev.tree.rootCid(),
    newBlocks,
    removedCids,
    ops,
    proofBlocks,
    repo: new Repo(prev.store, signed.cid, signed.commit, tree),
  };
}

export class Repo {
  readonly store: BlockReader;
  readonly cid: Cid;
  readonly commit: Commit;
  readonly data: Mst;

  constructor(store: BlockReader, cid: Cid, commit: Commit, data: Mst) {
    this.store = store;
    this.cid = cid;
    this.commit = commit;
    this.data = data;
  }

  get did(): string {
    return this.commit.did;
  }
  get rev(): string {
    return this.commit.rev;
  }

  /** The repository at commit `cid` (loads the commit and the MST root, nothing else). */
  static load(store: BlockReader, cid: Cid): Repo {
    const bytes = store.getBlock(cid);
    if (bytes === undefined) throw new RepoError('MissingBlock', `commit ${formatCid(cid)} is not in the block store`);
    const commit = decodeCommit(bytes);
    try {
      return new Repo(store, cid, commit, Mst.load(store, commit.data));
    } catch (err) {
      throw mstToRepoError(err);
    }
  }

  /** The first commit of a new repository, optionally with initial records. */
  static create(
    store: BlockReader,
    did: string,
    key: SigningKey,
    writes: readonly RecordWrite[] = [],
    options: CommitOptions = {},
  ): Promise<CommitResult> {
    for (const w of writes) {
      if (w.action !== 'create') throw new RepoError('InvalidWrite', 'the first commit can only create records');
    }
    return buildCommit({ store, did, tree: Mst.create(store), commitCid: null, rev: null }, writes, key, options);
  }

  /** Applies up to 200 writes and signs the next commit. Nothing is stored: see `CommitResult`. */
  applyWrites(writes: readonly RecordWrite[], key: SigningKey, options: CommitOptions = {}): Promise<CommitResult> {
    return buildCommit(
      { store: this.store, did: this.did, tree: this.data, commitCid: this.cid, rev: this.commit.rev },
      writes,
      key,
      options,
    );
  }

  /** The record's CID, or null. */
  getRecordCid(collection: string, rkey: string): Cid | null {
    try {
      return this.data.get(`${collection}/${rkey}`);
    } catch (err) {
      throw mstToRepoError(err);
    }
  }

  /** The record's CID and block, or null when there is no such record. */
  getRecord(collection: string, rkey: string): { cid: Cid; bytes: Uint8Array } | null {
    const cid = this.getRecordCid(collection, rkey);
    if (cid === null) return null;
    const bytes = this.store.getBlock(cid);
    if (bytes === undefined)
      throw new RepoError('MissingBlock', `record ${collection}/${rkey} (${formatCid(cid)}) is not in the block store`);
    return { cid, bytes };
  }

  /**
   * One page of a collection, for listRecords: records after `cursor` (an rkey), or before it
   * with `reverse`. The next cursor is the last rkey returned.
   */
  listRecords(
    collection: string,
    options: { limit?: number; cursor?: string; reverse?: boolean } = {},
  ): { rkey: string; cid: Cid }[] {
    const limit = options.limit ?? 50;
    const out: { rkey: string; cid: Cid }[] = [];
    if (limit <= 0) return out;
    const skip = collection.length + 1;
    try {
      for (const leaf of this.data.listCollection(collection, { cursor: options.cursor, reverse: options.reverse })) {
        out.push({ rkey: leaf.key.slice(skip), cid: leaf.value });
        if (out.length >= limit) break;
      }
    } catch (err) {
      throw mstToRepoError(err);
    }
    return out;
  }
}
