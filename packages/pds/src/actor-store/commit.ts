/**
 * The commit itself: checking a batch of requests against the current repository, having the
 * engine build and sign one commit for them, and persisting it (blocks, records, root, blob
 * links and status, and the firehose event through the commit listeners) in one SQLite
 * transaction of the account's store. A write is acknowledged only after that transaction.
 * Every function here runs with the account's write lock held.
 */
import { type Cid, cidEquals, formatCid, parseCid } from '@portage/atproto/cid';
import type { ExportableSigningKey } from '@portage/atproto/crypto';
import { decodeCommit, signCommit, verifyCommitSignature } from '@portage/atproto/repo/commit';
import { nextTid } from '@portage/atproto/tid';
import type { BlobStore } from '../blobstore/blobstore.ts';
import { MAX_COMMIT_BLOCKS_BYTES } from '../sequencer/events.ts';
import { ActorStoreError, atUri, repoNotFound } from './errors.ts';
import type { QueuedWrite } from './group-commit.ts';
import type { ActorHandle } from './open-stores.ts';
import type { PreparedWrite } from './prepare-writes.ts';
import { createRepo, eventCarBytes, type RepoCommit, writeRepo } from './repo-engine.ts';
import type { RootIndex } from './root-index.ts';
import type { CommitEvent, CommitListener, RepoRoot, WriteResult } from './types.ts';

interface TemporaryBlob {
  cid: Cid;
  tempKey: string;
}

export interface RepoWriterDeps {
  blobstore: BlobStore;
  rootIndex: RootIndex;
  /** The commit listeners (the firehose sequencer), read at each commit. */
  listeners: readonly CommitListener[];
}

export class RepoWriter {
  private readonly blobstore: BlobStore;
  private readonly rootIndex: RootIndex;
  private readonly listeners: readonly CommitListener[];

  constructor(deps: RepoWriterDeps) {
    this.blobstore = deps.blobstore;
    this.rootIndex = deps.rootIndex;
    this.listeners = deps.listeners;
  }

  /** The first commit of a new repository: an empty tree, signed. */
  async createRepository(handle: ActorHandle, key: ExportableSigningKey): Promise<RepoRoot> {
    const commit = await createRepo(handle.blocks, handle.did, key);
    this.persist(handle, commit, [], () => {});
    return { cid: commit.cid, rev: commit.rev };
  }

  /**
   * Checks each request of the batch, then commits the ones that passed together. Returns the
   * requests left for the next commit: when the shared commit would make a #commit event over
   * the firehose's 2,000,000-byte limit (the queue's estimate fell short), only a leading part
   * of the batch is committed; the rest goes back to the head of the queue and is checked again.
   */
  async commitBatch(
    handle: ActorHandle,
    signingKey: () => Promise<ExportableSigningKey>,
    batch: QueuedWrite[],
  ): Promise<QueuedWrite[]> {
    const did = handle.did;
    const root = handle.root();
    if (!root) throw repoNotFound(did);
    const accepted: { item: QueuedWrite; newBlobs: TemporaryBlob[] }[] = [];
    for (const item of batch) {
      try {
        if (item.swapCommit && !cidEquals(item.swapCommit, root.cid)) {
          throw new ActorStoreError('InvalidSwap', `Commit was at ${formatCid(root.cid)}`);
        }
        checkRecordSwaps(handle, item.writes);
        accepted.push({ item, newBlobs: checkBlobs(handle, item.writes) });
      } catch (err) {
        item.reject(err);
      }
    }
    if (accepted.length === 0) return [];
    const writesOf = (count: number) => accepted.slice(0, count).flatMap((a) => a.item.writes);
    let committedCount = accepted.length;
    try {
      const key = await signingKey();
      let commit = await writeRepo(handle.blocks, root.cid, writesOf(committedCount), key);
      while (committedCount > 1 && eventCarBytes(commit) > MAX_COMMIT_BLOCKS_BYTES) {
        committedCount = Math.ceil(committedCount / 2);
        commit = await writeRepo(handle.blocks, root.cid, writesOf(committedCount), key);
      }
      const committed = accepted.slice(0, committedCount);
      const newBlobs = new Map<string, TemporaryBlob>();
      for (const a of committed) for (const blob of a.newBlobs) newBlobs.set(formatCid(blob.cid), blob);
      // Blob files move to their permanent place before the transaction: if the process dies in
      // between, the rows still say "temporary" and makePermanent is idempotent on retry.
      for (const blob of newBlobs.values()) {
        try {
          await this.blobstore.makePermanent(did, blob.tempKey, blob.cid);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          // The upload aged out of the temporary area before a record referenced it.
          handle.sql.deleteBlob.run(formatCid(blob.cid));
          throw new ActorStoreError('BlobNotFound', `Could not find blob: ${formatCid(blob.cid)} (upload it again)`);
        }
      }
      const dereferenced: Cid[] = [];
      this.persist(handle, commit, writesOf(committedCount), (cids) => dereferenced.push(...cids));
      // The commit is durable; a blob file that fails to go is only wasted space, not an error.
      if (dereferenced.length > 0) await this.blobstore.delete(did, dereferenced).catch(() => {});
      const meta = { cid: commit.cid, rev: commit.rev };
      for (const { item } of committed) {
        const results: WriteResult[] = item.writes.map((w) => ({
          action: w.action,
          uri: atUri(did, w.collection, w.rkey),
          cid: w.action === 'delete' ? null : w.cid,
          validationStatus: w.action === 'delete' ? undefined : w.validationStatus,
        }));
        item.resolve({ commit: meta, results });
      }
    } catch (err) {
      for (const { item } of accepted.slice(0, committedCount)) item.reject(err);
    }
    return accepted.slice(committedCount).map((a) => a.item);
  }

  /**
   * Writes one commit in a single transaction: blocks (new in, unreferenced out), records,
   * blob links and status, the new root, then the commit listeners.
   */
  private persist(
    handle: ActorHandle,
    commit: RepoCommit,
    writes: PreparedWrite[],
    onDereferencedBlobs: (cids: Cid[]) => void,
  ): void {
    const { did, sql, blocks } = handle;
    const now = new Date().toISOString();
    const dereferenced: Cid[] = [];
    handle.db.transaction(() => {
      for (const { cid, bytes } of commit.newBlocks.entries()) blocks.putBlock(cid, bytes, commit.rev);
      const touchedBlobs = new Set<string>();
      for (const write of writes) {
        const uri = atUri(did, write.collection, write.rkey);
        for (const row of sql.blobsOfRecord.all(uri) as { blob_cid: string }[]) touchedBlobs.add(row.blob_cid);
        sql.unlinkRecordBlobs.run(uri);
        if (write.action === 'delete') {
          sql.deleteRecord.run(uri);
          continue;
        }
        sql.upsertRecord.run(uri, formatCid(write.cid), write.collection, write.rkey, commit.rev, now);
        for (const ref of write.blobs) {
          sql.linkBlob.run(ref.cid, uri);
          sql.makeBlobPermanent.run(ref.cid);
        }
      }
      for (const cid of commit.removedCids) {
        // Two records with identical content share a block: keep it while any record uses it.
        if (sql.recordCidInUse.get(formatCid(cid))) continue;
        if (commit.newBlocks.has(cid)) continue;
        blocks.deleteBlock(cid);
      }
      for (const blobCid of touchedBlobs) {
        if (sql.blobInUse.get(blobCid)) continue;
        sql.deleteBlob.run(blobCid);
        dereferenced.push(parseCid(blobCid));
      }
      sql.putRoot.run(did, formatCid(commit.cid), commit.rev, now);
      if (this.listeners.length > 0) {
        const event = commitEvent(commit);
        for (const listener of this.listeners) listener(event, handle.db);
      }
    })();
    this.rootIndex.set(did, commit);
    blocks.cacheCommitted(Array.from(commit.newBlocks.entries(), (e) => [e.cid, e.bytes] as [Cid, Uint8Array]));
    onDereferencedBlobs(dereferenced);
  }
}

/**
 * The engine's commit as the firehose names it: the one conversion between the engine and the
 * frame encoder, a choice of fields by reference (no block is copied). The engine speaks of the
 * repository (`cid`, the decoded `commit`, `proofBlocks`); the event and the #commit frame of
 * what a consumer receives (`commit` is the commit's CID, `blocks` the CAR's contents).
 */
function commitEvent(commit: RepoCommit): CommitEvent {
  return {
    did: commit.did,
    commit: commit.cid,
    rev: commit.rev,
    since: commit.since,
    prevData: commit.prevData,
    ops: commit.ops,
    blocks: commit.proofBlocks,
    removedCids: commit.removedCids,
  };
}

function checkRecordSwaps(handle: ActorHandle, writes: PreparedWrite[]): void {
  for (const write of writes) {
    const row = handle.sql.getRecordCid.get(atUri(handle.did, write.collection, write.rkey)) as
      { cid: string } | undefined;
    const current = row ? parseCid(row.cid) : null;
    if (write.action === 'create' && current) {
      throw new ActorStoreError('InvalidRequest', `Record already exists at ${write.path}`);
    }
    if (write.action === 'delete' && !current) {
      throw new ActorStoreError('InvalidRequest', `Could not find record to delete at ${write.path}`);
    }
    if (write.swapCid === undefined) continue;
    const matches = write.swapCid === null ? current === null : current !== null && cidEquals(current, write.swapCid);
    if (!matches) {
      throw new ActorStoreError('InvalidSwap', `Record was at ${current ? formatCid(current) : 'null'}`);
    }
  }
}

/** Every blob a record references must have been uploaded to this account. */
function checkBlobs(handle: ActorHandle, writes: PreparedWrite[]): TemporaryBlob[] {
  const temporary: TemporaryBlob[] = [];
  const seen = new Set<string>();
  for (const write of writes) {
    if (write.action === 'delete') continue;
    for (const ref of write.blobs) {
      if (seen.has(ref.cid)) continue;
      seen.add(ref.cid);
      const row = handle.sql.getBlob.get(ref.cid) as { temp_key: string | null } | undefined;
      if (!row) throw new ActorStoreError('BlobNotFound', `Could not find blob: ${ref.cid}`);
      if (row.temp_key !== null) temporary.push({ cid: parseCid(ref.cid), tempKey: row.temp_key });
    }
  }
  return temporary;
}

/**
 * Makes the head commit signed by `key`: same tree, under a rev greater than every earlier one
 * (activation of an account that moved in, so relays verifying its #sync see the key the DID now
 * names). A head `key` already signed is kept as it is. Returns the head and its block. The
 * caller (ActorStore.resignHead, through withRepoHandle) moves the root index and drops the
 * handle's block cache afterwards.
 */
export async function resignHead(
  handle: ActorHandle,
  key: ExportableSigningKey,
): Promise<{ cid: Cid; bytes: Uint8Array; rev: string }> {
  const root = handle.root();
  if (!root) throw repoNotFound(handle.did);
  const oldBytes = handle.blocks.getBlock(root.cid);
  if (!oldBytes) throw new Error(`head commit block of ${handle.did} is missing`);
  const old = decodeCommit(oldBytes);
  if (await verifyCommitSignature(old, key.did())) return { cid: root.cid, bytes: oldBytes, rev: old.rev };
  const signed = await signCommit({ did: handle.did, data: old.data, rev: nextTid(old.rev) }, key);
  handle.db.transaction(() => {
    handle.blocks.putBlock(signed.cid, signed.bytes, signed.commit.rev);
    handle.blocks.deleteBlock(root.cid);
    handle.sql.putRoot.run(handle.did, formatCid(signed.cid), signed.commit.rev, new Date().toISOString());
  })();
  return { cid: signed.cid, bytes: signed.bytes, rev: signed.commit.rev };
}
