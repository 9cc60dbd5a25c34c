/**
 * The actor store's public face: the service class, the factory context.ts calls, the
 * write-preparation functions the repo endpoints use, and the error mapping for XRPC.
 */
import type { PdsConfig } from '../config.ts';
import { DiskBlobStore } from '../blobstore/disk.ts';
import { ActorStore } from './actor-store.ts';

export { ActorStore, ActorStoreError } from './actor-store.ts';
export type { CommitEvent, CommitListener, CommitOp, CommitResult, RepoRoot, StoredRecord } from './types.ts';

/** The actor store for a PDS configuration, with its disk blobstore. */
export function createActorStore(config: PdsConfig): ActorStore {
  return new ActorStore({
    directory: config.actorStoreDirectory,
    blobstore: new DiskBlobStore(config.blobstoreDiskLocation, config.blobstoreDiskTmpLocation),
  });
}
