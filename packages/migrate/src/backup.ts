/**
 * Where the engine tees what it moves, so the user ends up with a copy of their account that
 * does not depend on either server. Node writes a directory (backup.node.ts); the wizard may
 * write to the browser's file system API. Each write consumes the stream it is given and must
 * only make the item visible once it arrived whole (a cut stream leaves no partial file).
 */
export interface BackupSink {
  /** The repo commit CID of the CAR stored now, if any (to skip an unchanged repo). */
  repoCommit(): Promise<string | undefined>;
  /** Stores the full repo CAR; `commit` is the commit CID it is expected to end at. */
  writeRepo(body: ReadableStream<Uint8Array>, commit: string | undefined): Promise<void>;
  hasBlob(cid: string): Promise<boolean>;
  /** Stores a blob; rejects (and stores nothing) if the bytes do not hash to `cid`. */
  writeBlob(cid: string, body: ReadableStream<Uint8Array>): Promise<void>;
  writePreferences(preferences: unknown[]): Promise<void>;
}
