/**
 * The bridge between the actor store and the repository engine of @portage/atproto (Repo and
 * record proofs). It converts prepared writes into engine writes and engine results into what
 * the actor store persists and announces. Nothing here touches SQLite: the engine reads through
 * the BlockReader interface that SqliteBlockStore implements.
 */
import type { CarBlockInput } from '@portage/atproto/car';
import { type Cid, formatCid } from '@portage/atproto/cid';
import type { SigningKey } from '@portage/atproto/crypto';
import { recordPathNodes } from '@portage/atproto/mst/proof';
import { Mst } from '@portage/atproto/mst/tree';
import type { BlockMap, BlockReader } from '@portage/atproto/repo/block-store';
import { decodeCommit } from '@portage/atproto/repo/commit';
import { RepoError } from '@portage/atproto/repo/errors';
import { type CommitResult as EngineCommit, type RecordWrite, Repo } from '@portage/atproto/repo/repo';
import { eventCarSize } from '../sequencer/event-car.ts';
import type { PreparedWrite } from './prepare-writes.ts';
import type { CommitOp } from './types.ts';

/**
 * Room a write needs in a #commit besides its record block: its share of the new MST nodes, the
 * proof nodes around its key and the commit block. A single create in a 20,000-record tree
 * brings about 2 KB; writes sharing a commit share most of their path, so this is generous.
 */
const EVENT_BYTES_PER_WRITE = 4096;

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

/** Exact size of the CAR a firehose #commit of this commit carries (what its limit is measured on). */
export function eventCarBytes(commit: RepoCommit): number {
  return eventCarSize(commit.cid, commit.eventBlocks.entries());
}

/**
 * A generous estimate of the bytes `writes` add to a #commit, known before the commit is built:
 * how the group-commit queue keeps a shared commit under the firehose limit.
 */
export function estimatedEventBytes(writes: readonly PreparedWrite[]): number {
  let size = 0;
  for (const write of writes) {
    size += EVENT_BYTES_PER_WRITE;
    if (write.action !== 'delete') size += write.cid.bytes.length + write.bytes.length + 4;
  }
  return size;
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

/** Commit block plus the MST path to the record (and the record, when present). */
export function recordProof(store: BlockReader, commitCid: Cid, collection: string, rkey: string): CarBlockInput[] {
  const commitBytes = need(store, commitCid, 'MissingBlock', 'commit');
  const path = recordPathNodes(Mst.load(store, decodeCommit(commitBytes).data), `${collection}/${rkey}`);
  const out: CarBlockInput[] = [{ cid: commitCid, bytes: commitBytes }, ...path.nodes.entries()];
  if (path.value !== null) out.push({ cid: path.value, bytes: need(store, path.value, 'MissingRecord', 'record') });
  return out;
}
