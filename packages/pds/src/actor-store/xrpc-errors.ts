/**
 * The actor store and write preparation throw AtprotoErrors whose `code` is the XRPC error name
 * the reference uses (InvalidSwap, RepoNotFound, BlobNotFound...). The server's generic mapping
 * would turn them all into InvalidRequest, so repo and sync endpoints run through this instead.
 */
import { AtprotoError } from '@portage/atproto/errors';
import { XrpcError } from '../xrpc/errors.ts';

/** Error names the repo and sync lexicons declare; other codes are plain InvalidRequest. */
const LEXICON_ERRORS = new Set([
  'InvalidSwap',
  'RepoNotFound',
  'RecordNotFound',
  'BlobNotFound',
  'BlockNotFound',
  'RepoDeactivated',
  'RepoTakendown',
  'RepoSuspended',
]);

/** A typed error as the XRPC error it stands for (400 unless noted); other errors unchanged. */
export function repoXrpcError(err: unknown): unknown {
  if (!(err instanceof AtprotoError)) return err;
  if (err.code === 'BlobTooLarge') return new XrpcError(413, 'PayloadTooLarge', err.message);
  return new XrpcError(400, LEXICON_ERRORS.has(err.code) ? err.code : 'InvalidRequest', err.message);
}

/** Runs `fn`, rethrowing typed errors as their XRPC error. */
export async function withRepoErrors<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw repoXrpcError(err);
  }
}
