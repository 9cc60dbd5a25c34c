/** The actor store's typed errors: endpoints map them to XRPC errors by `code` (xrpc-errors.ts). */
import { AtprotoError } from '@portage/atproto/errors';

/** Errors the endpoints map to XRPC errors by `code` (RepoNotFound, InvalidSwap, BlobNotFound...). */
export class ActorStoreError extends AtprotoError {}

export function repoNotFound(did: string): ActorStoreError {
  return new ActorStoreError('RepoNotFound', `Could not find repo for DID: ${did}`);
}

export function atUri(did: string, collection: string, rkey: string): string {
  return `at://${did}/${collection}/${rkey}`;
}
