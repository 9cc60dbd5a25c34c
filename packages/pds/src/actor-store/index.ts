/**
 * The actor store's public face: the service class, the factory context.ts calls, the
 * write-preparation functions the repo endpoints use, and the error mapping for XRPC.
 */
import type { PdsConfig } from '../config.ts';
import { DiskBlobStore } from '../blobstore/disk.ts';
import { ActorStore } from './actor-store.ts';

export { ActorStore, ActorStoreError } from './actor-store.ts';
export type { CommitEvent, CommitListener, CommitOp, CommitResult, RepoRoot, StoredRecord } from './types.ts';

/** How long an upload may stay unreferenced before the sweep removes it. */
export const TEMP_BLOB_MAX_AGE_MS = 60 * 60 * 1000;

/** The actor store for a PDS configuration, with its disk blobstore. */
export function createActorStore(config: PdsConfig): ActorStore {
  return new ActorStore({
    directory: config.actorStoreDirectory,
    blobstore: new DiskBlobStore(config.blobstoreDiskLocation, config.blobstoreDiskTmpLocation),
  });
}

/**
 * Runs the temporary-blob sweep every `intervalMs` (unref'd, so it never keeps the process
 * alive). Returns the function that stops it.
 */
export function startTempBlobSweep(store: ActorStore, intervalMs = 10 * 60 * 1000): () => void {
  const timer = setInterval(() => {
    store.sweepTemporaryBlobs(TEMP_BLOB_MAX_AGE_MS).catch(() => {});
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
