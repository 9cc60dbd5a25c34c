/**
 * The bridge between the actor store and the repository engine of @portage/atproto (Repo and
 * record proofs). It converts prepared writes into engine writes; the engine's commit result is
 * what the actor store persists and announces, unchanged. Nothing here touches SQLite: the
 * engine reads through the BlockReader interface that SqliteBlockStore implements.
 */
import type { CarBlockInput } from '@portage/atproto/car';
import { type Cid, formatCid } from '@portage/atproto/cid';
import type { SigningKey } from '@portage/atproto/crypto';
import { recordPathNodes } from '@portage/atproto/mst/proof';
import { Mst } from '@portage/atproto/mst/tree';
import type { BlockReader } from '@portage/atproto/repo/block-store';
import { decodeCommit } from '@portage/atproto/repo/commit';
import { RepoError } from '@portage/atproto/repo/errors';
import { type CommitResult as EngineCommit, type RecordWrite, Repo } from '@portage/atproto/repo/repo';
import { eventCarSize } from '../sequencer/event-car.ts';
import type { PreparedWrite } from './prepare-writes.ts';

/**
 * Room a write needs in a #commit besides its record block: its share of the new MST nodes, the
 * proof nodes around its key and the commit block. A single create in a 20,000-record tree
 * brings about 2 KB; writes sharing a commit share most of their path, so this is generous.
 */
const EVENT_BYTES_PER_WRITE = 4096;

/**
 * A signed commit as the engine returns it, and as the actor store persists and announces it:
 * `newBlocks`, `removedCids` and the records go to the store, `ops`, `since`, `prevData` and
 * `proofBlocks` to the firehose (see types.ts CommitEvent).
 */
export type RepoCommit = EngineCommit;

/** Exact size of the CAR a firehose #commit of this commit carries (what its limit is measured on). */
export function eventCarBytes(commit: RepoCommit): number {
  return eventCarSize(commit.cid, commit.proofBlocks.entries());
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
  return Repo.create(store, did, key);
}

/** Applies `writes` on top of the commit `current` and signs the result. */
export async function writeRepo(
  store: BlockReader,
  current: Cid,
  writes: PreparedWrite[],
  key: SigningKey,
): Promise<RepoCommit> {
  return Repo.load(store, current).applyWrites(writes.map(toEngineWrite), key);
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
