/**
 * The bridge between the actor store and the repository engine of @portage/atproto (Repo,
 * exports, proofs). It converts prepared writes into engine writes and engine results into what
 * the actor store persists and announces. Nothing here touches SQLite: the engine reads through
 * the BlockReader interface that SqliteBlockStore implements.
 */
import { type CarBlockInput, writeCar } from '@portage/atproto/car';
import { type Cid, cidEquals, formatCid } from '@portage/atproto/cid';
import type { SigningKey } from '@portage/atproto/crypto';
import { decodeNode } from '@portage/atproto/mst/node';
import { recordPathNodes } from '@portage/atproto/mst/proof';
import { Mst } from '@portage/atproto/mst/tree';
import type { BlockMap, BlockReader, RevisionedBlockSource } from '@portage/atproto/repo/block-store';
import { decodeCommit } from '@portage/atproto/repo/commit';
import { RepoError } from '@portage/atproto/repo/errors';
import { type CommitResult as EngineCommit, type RecordWrite, Repo } from '@portage/atproto/repo/repo';
import type { PreparedWrite } from './prepare-writes.ts';
import type { CommitOp } from './types.ts';

/** A signed commit and everything needed to persist it and announce it. */
export interface RepoCommit {
  cid: Cid;
  rev: string;
  since: string | null;
  prevData: Cid | null;
  /** Commit block, new MST nodes and new record blocks: stored tagged with `rev`. */
  newBlocks: BlockMap;
  /** Blocks the new commit no longer references (old commit, replaced nodes and records). */
  removedCids: Cid[];
  ops: CommitOp[];
  /** What a firehose #commit carries: commit, new records and the covering proofs of each op. */
  eventBlocks: BlockMap;
}

function fromEngine(result: EngineCommit): RepoCommit {
  return {
    cid: result.cid,
    rev: result.rev,
    since: result.since,
    prevData: result.prevData,
    newBlocks: result.newBlocks,
    removedCids: result.removedCids,
    ops: result.ops,
    eventBlocks: result.proofBlocks,
  };
}

function toEngineWrite(write: PreparedWrite): RecordWrite {
  if (write.action === 'delete') return { action: 'delete', collection: write.collection, rkey: write.rkey };
  // The record is already validated and encoded: hand the engine its canonical bytes.
  return { action: write.action, collection: write.collection, rkey: write.rkey, record: write.bytes };
}

/** The first commit of a new repository: an empty tree, signed. */
export async function createRepo(store: BlockReader, did: string, key: SigningKey): Promise<RepoCommit> {
  return fromEngine(await Repo.create(store, did, key));
}

/** Applies `writes` on top of the commit `current` and signs the result. */
export async function writeRepo(
  store: BlockReader,
  current: Cid,
  writes: PreparedWrite[],
  key: SigningKey,
): Promise<RepoCommit> {
  return fromEngine(await Repo.load(store, current).applyWrites(writes.map(toEngineWrite), key));
}

function need(store: BlockReader, cid: Cid, what: 'MissingNode' | 'MissingRecord' | 'MissingBlock', label: string) {
  const bytes = store.getBlock(cid);
  if (bytes === undefined) throw new RepoError(what, `${label} ${formatCid(cid)} is not in the block store`);
  return bytes;
}

/**
 * Commit, then MST nodes in pre-order with each record right after the entry that points to it
 * (the order readers can verify as they go). One node decoded at a time: memory stays flat.
 */
function* repoBlocks(store: BlockReader, commitCid: Cid): Generator<CarBlockInput> {
  const commitBytes = need(store, commitCid, 'MissingBlock', 'commit');
  yield { cid: commitCid, bytes: commitBytes };
  yield* treeBlocks(store, decodeCommit(commitBytes).data);
}

function* treeBlocks(store: BlockReader, root: Cid): Generator<CarBlockInput> {
  const bytes = need(store, root, 'MissingNode', 'MST node');
  yield { cid: root, bytes };
  const node = decodeNode(bytes);
  if (node.left !== null) yield* treeBlocks(store, node.left);
  for (let i = 0; i < node.keys.length; i++) {
    const value = node.values[i] as Cid;
    yield { cid: value, bytes: need(store, value, 'MissingRecord', `record ${node.keys[i]}`) };
    const right = node.rights[i];
    if (right) yield* treeBlocks(store, right);
  }
}

/** The whole repository as a streaming CAR. */
export function exportCar(store: BlockReader, commitCid: Cid): AsyncIterable<Uint8Array> {
  return writeCar([commitCid], repoBlocks(store, commitCid));
}

/** The blocks written after rev `since`, commit first, rooted at the current commit (getRepo?since=). */
export function exportCarSince(store: RevisionedBlockSource, commitCid: Cid, since: string): AsyncIterable<Uint8Array> {
  function* blocks(): Generator<CarBlockInput> {
    yield { cid: commitCid, bytes: need(store, commitCid, 'MissingBlock', 'commit') };
    for (const block of store.blocksSince(since)) if (!cidEquals(block.cid, commitCid)) yield block;
  }
  return writeCar([commitCid], blocks());
}

/** Commit block plus the MST path to the record (and the record, when present). */
export function recordProof(store: BlockReader, commitCid: Cid, collection: string, rkey: string): CarBlockInput[] {
  const commitBytes = need(store, commitCid, 'MissingBlock', 'commit');
  const path = recordPathNodes(Mst.load(store, decodeCommit(commitBytes).data), `${collection}/${rkey}`);
  const out: CarBlockInput[] = [{ cid: commitCid, bytes: commitBytes }, ...path.nodes.entries()];
  if (path.value !== null) out.push({ cid: path.value, bytes: need(store, path.value, 'MissingRecord', 'record') });
  return out;
}
