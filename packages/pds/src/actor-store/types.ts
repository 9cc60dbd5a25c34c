/**
 * What the actor store hands out: commit results for endpoints and the commit event the
 * firehose sequencer receives. Kept apart from the implementation so the sequencer and the
 * endpoints depend on shapes, not on SQLite.
 */
import type { Cid } from '@portage/atproto/cid';
import type { SqliteDb } from './db.ts';
import type { BlockMap } from '@portage/atproto/repo/block-store';
import type { ValidationStatus } from './prepare-writes.ts';
import type { CommitEventData, CommitOp as FirehoseCommitOp } from '../sequencer/events.ts';

export interface RepoRoot {
  cid: Cid;
  rev: string;
}

/** One record operation of a commit: the firehose's op shape, `prev` always filled in by the engine. */
export type CommitOp = Required<FirehoseCommitOp>;

/**
 * A commit as the firehose's #commit describes it, handed to commit listeners synchronously
 * inside the write transaction (so a listener that writes the sequencer log commits or rolls back
 * with the repository write). It is the sequencer's own input (CommitEventData), so the listener
 * passes it on as it is; the actor store fills it from the engine's commit by reference, naming
 * the fields as the #commit frame does (`commit`, `blocks`) rather than as the repository does.
 */
export interface CommitEvent extends CommitEventData {
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
  /** Set when a moderator took the record down (com.atproto.repo reads then refuse it). */
  takedownRef?: string;
}

export interface BlobInfo {
  cid: Cid;
  mimeType: string;
  size: number;
}

/** What checkAccountStatus reports of a repository. */
export interface RepoStatusCounts {
  root: RepoRoot;
  /** Rows in the block table: the commit, every MST node and every distinct record block. */
  blocks: number;
  records: number;
  /** Distinct blobs the records reference. */
  expectedBlobs: number;
  /** Of those, the ones uploaded. */
  importedBlobs: number;
}
