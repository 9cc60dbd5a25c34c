/**
 * Where the engine tees what it moves, so the user ends up with a copy of their account that
 * does not depend on either server. Node writes a directory (backup.node.ts); the wizard may
 * write to the browser's file system API. Each write consumes the body it is given and must
 * only make the item visible once it arrived whole (a cut stream leaves no partial file).
 *
 * The engine also reads back: the repository CAR, downloaded while the sessions are set up, is
 * imported from the backup; blobs are fetched into it while the new server imports and uploaded
 * from there (by this run or, with their content types recorded, by a run started after a kill):
 * downloads run as their own stage ahead of the uploads, which wait only for a blob the prefetch
 * has not got to yet.
 */
export interface BackupSink {
  /** The repo commit CID of the CAR stored now, if any (to skip an unchanged repo). */
  repoCommit(): Promise<string | undefined>;
  /** Stores the full repo CAR; `commit` is the commit CID it is expected to end at. */
  writeRepo(body: ReadableStream<Uint8Array>, commit: string | undefined): Promise<void>;
  /**
   * The stored CAR (the one `repoCommit` names), or undefined when none is stored. Optional: with
   * it, the engine downloads the repository into the backup while it signs in and creates the
   * account, then imports from here. A Blob should read from storage as it is sent.
   */
  readRepo?(): Promise<Blob | ReadableStream<Uint8Array> | undefined>;
  hasBlob(cid: string): Promise<boolean>;
  /**
   * Stores a blob; rejects (and stores nothing) if the bytes do not hash to `cid`. `contentType`
   * is the type the old server sent it with, kept beside the blob: uploading it needs that type,
   * and a run started again after a kill must not ask the old server for the bytes only to learn it.
   */
  writeBlob(cid: string, body: ReadableStream<Uint8Array> | Uint8Array, contentType?: string): Promise<void>;
  /**
   * The content type writeBlob recorded for a blob, in this run or an earlier one; undefined when
   * none was (the blob is then fetched from the old server again). Optional: without it, only the
   * blobs stored during the current run are uploaded from the backup.
   */
  blobContentType?(cid: string): Promise<string | undefined>;
  /**
   * A stored blob's size, with its bytes to read on demand (so the caller can reserve the memory
   * first), or undefined when it is not stored.
   */
  readBlob(cid: string): Promise<StoredBlob | undefined>;
  writePreferences(preferences: unknown[]): Promise<void>;
  /**
   * The repository revision up to which every blob is stored (a scheduled backup lists only the
   * blobs added after it), and recording it once a round has stored them. Optional: without it,
   * every round lists all blobs.
   */
  blobsCompleteAt?(): Promise<string | undefined>;
  markBlobsComplete?(rev: string): Promise<void>;
  /**
   * Records the account's #atproto key (did:key) beside the repo: the key its commit is signed
   * with, so the backup can check that signature without asking anyone. Optional.
   */
  recordSigningKey?(signingKey: string): Promise<void>;
}

/** A blob the backup holds. */
export interface StoredBlob {
  size: number;
  /**
   * Its bytes, or undefined when it went away since. Small blobs may come back as bytes; large
   * ones should be a Blob (a File in browsers) that reads from storage as it is sent, so memory
   * stays bounded whatever the size.
   */
  read(): Promise<Uint8Array | Blob | undefined>;
}
