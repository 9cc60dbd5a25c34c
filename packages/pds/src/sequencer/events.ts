/**
 * The four kinds of repository event a PDS sequences, as the data its producers hand over, and
 * their conversion into firehose message bodies (com.atproto.sync.subscribeRepos#commit, #sync,
 * #identity, #account) without the `seq`, which only the sequencer assigns.
 *
 * Limits are enforced here, before anything is written: a #commit carries at most 200 ops and
 * 2,000,000 bytes of blocks, so `tooBig` is always false and every commit is verifiable by a
 * relay from the event alone (sync v1.1). A write over the limit is rejected, which rolls back
 * the repo transaction it was part of.
 */
import { toBytes, toCidLink } from '@atcute/cbor';
import type { Cid } from '@portage/atproto/cid';
import { cidEquals, formatCid } from '@portage/atproto/cid';
import { AtprotoError } from '@portage/atproto/errors';
import { type CarBlock, encodeEventCar } from './event-car.ts';

export const MAX_COMMIT_OPS = 200;
export const MAX_COMMIT_BLOCKS_BYTES = 2_000_000;
/** The lexicon caps a #sync's CAR (a lone commit block) at 10,000 bytes. */
export const MAX_SYNC_BLOCKS_BYTES = 10_000;

export class SequencerError extends AtprotoError {}

export type EventType = 'commit' | 'sync' | 'identity' | 'account';

export type RepoAction = 'create' | 'update' | 'delete';

/** One record operation of a commit, as the firehose carries it. */
export interface CommitOp {
  action: RepoAction;
  /** `<collection>/<rkey>` */
  path: string;
  /** The new record's CID; null for deletes. */
  cid: Cid | null;
  /** The record's CID before the commit, for updates and deletes (needed to invert the op). */
  prev?: Cid | null;
}

export interface CommitEventData {
  did: string;
  /** CID of the signed commit object; its block must be among `blocks`. */
  commit: Cid;
  rev: string;
  /** rev of the previous commit, null for the first commit of a repo. */
  since: string | null;
  /** MST root of the previous commit, null for the first commit of a repo. */
  prevData: Cid | null;
  ops: CommitOp[];
  /** New blocks of the commit plus the proof blocks (MST nodes on each op's path, before and after). */
  blocks: Iterable<CarBlock>;
}

export interface SyncEventData {
  did: string;
  commit: Cid;
  /** The signed commit block's bytes: the #sync CAR carries only this block. */
  commitBytes: Uint8Array;
  rev: string;
}

export interface IdentityEventData {
  did: string;
  handle?: string;
}

/** Hosting statuses of com.atproto.sync.subscribeRepos#account. */
export type AccountStatus = 'takendown' | 'suspended' | 'deleted' | 'deactivated' | 'desynchronized' | 'throttled';

export interface AccountEventData {
  did: string;
  active: boolean;
  /** Required when inactive: why the account is not active. */
  status?: AccountStatus;
}

/** A message body ready to encode once `seq` is added. */
export interface EventBody {
  type: EventType;
  did: string;
  body: Record<string, unknown>;
}

function checkDid(did: string): void {
  if (typeof did !== 'string' || !/^did:[a-z]+:[a-zA-Z0-9._:%-]+$/.test(did)) {
    throw new SequencerError('InvalidEvent', `event repo is not a DID: ${JSON.stringify(String(did).slice(0, 100))}`);
  }
}

function checkOp(op: CommitOp, index: number): void {
  const where = `op ${index} (${op.action} ${op.path})`;
  if (typeof op.path !== 'string' || !op.path.includes('/')) {
    throw new SequencerError('InvalidEvent', `${where}: path must be <collection>/<rkey>`);
  }
  switch (op.action) {
    case 'create':
      if (!op.cid) throw new SequencerError('InvalidEvent', `${where}: a create needs the new record CID`);
      if (op.prev) throw new SequencerError('InvalidEvent', `${where}: a create has no previous record CID`);
      break;
    case 'update':
      if (!op.cid || !op.prev) {
        throw new SequencerError('InvalidEvent', `${where}: an update needs both the new and the previous record CID`);
      }
      break;
    case 'delete':
      if (op.cid) throw new SequencerError('InvalidEvent', `${where}: a delete has no new record CID`);
      if (!op.prev) throw new SequencerError('InvalidEvent', `${where}: a delete needs the previous record CID`);
      break;
    default:
      throw new SequencerError('InvalidEvent', `${where}: unknown action`);
  }
}

export function commitEventBody(data: CommitEventData, time: string): EventBody {
  checkDid(data.did);
  if (data.ops.length > MAX_COMMIT_OPS) {
    throw new SequencerError(
      'CommitTooLarge',
      `a commit of ${data.ops.length} record operations is over the firehose limit of ${MAX_COMMIT_OPS}`,
    );
  }
  data.ops.forEach(checkOp);
  const blocks = [...data.blocks];
  if (!blocks.some((b) => cidEquals(b.cid, data.commit))) {
    throw new SequencerError(
      'InvalidEvent',
      `the commit block ${formatCid(data.commit)} is not among the event blocks`,
    );
  }
  const car = encodeEventCar(data.commit, blocks);
  if (car.length > MAX_COMMIT_BLOCKS_BYTES) {
    throw new SequencerError(
      'CommitTooLarge',
      `a commit with ${car.length} bytes of blocks is over the firehose limit of ${MAX_COMMIT_BLOCKS_BYTES}`,
    );
  }
  const body: Record<string, unknown> = {
    repo: data.did,
    commit: toCidLink(data.commit),
    rev: data.rev,
    since: data.since,
    blocks: toBytes(car),
    ops: data.ops.map((op) => {
      const out: Record<string, unknown> = {
        action: op.action,
        path: op.path,
        cid: op.cid ? toCidLink(op.cid) : null,
      };
      if (op.prev) out.prev = toCidLink(op.prev);
      return out;
    }),
    // Deprecated fields the lexicon still requires.
    rebase: false,
    tooBig: false,
    blobs: [],
    time,
  };
  if (data.prevData) body.prevData = toCidLink(data.prevData);
  return { type: 'commit', did: data.did, body };
}

export function syncEventBody(data: SyncEventData, time: string): EventBody {
  checkDid(data.did);
  const car = encodeEventCar(data.commit, [{ cid: data.commit, bytes: data.commitBytes }]);
  if (car.length > MAX_SYNC_BLOCKS_BYTES) {
    throw new SequencerError('InvalidEvent', `a #sync CAR of ${car.length} bytes is over ${MAX_SYNC_BLOCKS_BYTES}`);
  }
  return { type: 'sync', did: data.did, body: { did: data.did, rev: data.rev, blocks: toBytes(car), time } };
}

export function identityEventBody(data: IdentityEventData, time: string): EventBody {
  checkDid(data.did);
  const body: Record<string, unknown> = { did: data.did, time };
  if (data.handle !== undefined) body.handle = data.handle;
  return { type: 'identity', did: data.did, body };
}

export function accountEventBody(data: AccountEventData, time: string): EventBody {
  checkDid(data.did);
  if (typeof data.active !== 'boolean') {
    throw new SequencerError('InvalidEvent', 'an #account event needs `active` as a boolean');
  }
  if (!data.active && !data.status) {
    throw new SequencerError('InvalidEvent', 'an inactive account needs a status (deactivated, deleted, takendown...)');
  }
  const body: Record<string, unknown> = { did: data.did, active: data.active, time };
  if (data.status) body.status = data.status;
  return { type: 'account', did: data.did, body };
}
