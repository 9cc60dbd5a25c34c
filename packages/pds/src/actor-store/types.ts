/**
 * What the actor store hands out: commit results for endpoints and the commit event the
 * firehose sequencer receives. Kept apart from the implementation so the sequencer and the
 * endpoints depend on shapes, not on SQLite.
 */
import type { Cid } from '@portage/atproto/cid';
import type { SqliteDb } from './db.ts';
import type { BlockMap } from '@portage/atproto/repo/block-store';
import type { ValidationStatus } from './prepare-writes.ts';
import type { CommitOp as FirehoseCommitOp } from '../sequencer/events.ts';

export interface RepoRoot {
  cid: Cid;
  rev: string;
}

/** One record operation of a commit: the firehose's op shape, `prev` always filled in by the store. */
export type CommitOp = Required<FirehoseCommitOp>;

/**
 * Everything a firehose #commit needs, handed to commit listeners synchronously inside the
 * write transaction (so a listener that writes the sequencer log commits or rolls back with
 * the repository write).
 */
export interface CommitEvent {
  did: string;
  commit: Cid;
  rev: string;
  /** rev of the previous commit; null for the first commit of a repository. */
  since: string | null;
  /** The MST root before this commit; null for the first commit. */
  prevData: Cid | null;
  ops: CommitOp[];
  /** New blocks of the commit (commit, MST nodes, records) plus the proof blocks for inversion. */
  blocks: BlockMap;
  /** Blocks no longer referenced by the repository. */
  removedCids: Cid[];
}

/**
 * Called inside the commit's write transaction with the account's database, so a listener can
 * write to it (the sequencer's outbox) atomically with the commit.
 */
export type CommitListener = (event: CommitEvent, db: SqliteDb) => void;

export interface WriteResult {
  action: 'create' | 'update' | 'delete';
  uri: string;
  cid: Cid | null;
  validationStatus: ValidationStatus | undefined;
}

export interface CommitResult {
  commit: RepoRoot;
  results: WriteResult[];
}

export interface StoredRecord {
  uri: string;
  /** The record's CID in text form, as stored (and as responses carry it). */
  cid: string;
  /** The record as JSON-ready data ($link / $bytes objects for CIDs and bytes). */
  value: unknown;
}

export interface BlobInfo {
  cid: Cid;
  mimeType: string;
  size: number;
}
