/**
 * com.atproto.repo.importRepo, done the careful way: the CAR streams into a staging store
 * (memory up to a budget, a scratch file past it: never whole in memory), the commit is checked
 * (it names this account's DID and is signed by a key the DID has held), and then, in one
 * transaction on the account's own connection (ActorStore.importRepository), the old repository
 * goes and the tree is verified as it is written (every MST node and record present, hash-checked
 * and canonical). Only a repository that passes every check is committed: a CAR that fails any
 * of them rolls back and leaves the account exactly as it was.
 *
 * Re-importing is safe: the whole repository is replaced each time, so importing the same
 * CAR twice, or a newer export after an interrupted migration, ends in the same state as a
 * single import of the last one. Blobs already uploaded stay; the records' blob references
 * are indexed so listMissingBlobs can say what is still to come.
 */
import { join } from 'node:path';
import { RepoError } from '@portage/atproto/repo/errors';
import { type StagedRepo, stageRepo } from '@portage/atproto/repo/import';
import type { ActorStore, ImportedRepo } from '../actor-store/actor-store.ts';
import { XrpcError } from '../xrpc/errors.ts';
import { type KeyHistorySources, signingKeysHeldBy } from './key-history.ts';
import { StagingBlockStore } from './staging-store.ts';

/** Default cap on an imported CAR: large enough for any real account (PDS_MAX_REPO_IMPORT_SIZE overrides). */
export const DEFAULT_MAX_REPO_IMPORT_BYTES = 4 * 1024 * 1024 * 1024;

export interface RepoImportDeps extends KeyHistorySources {
  actorStore: Pick<ActorStore, 'importRepository' | 'promoteReferencedBlobs'>;
  /** Directory for scratch staging files. */
  stagingDirectory: string;
}

/** What an import wrote (commit, rev, records, blocks, expected blobs). */
export type ImportSummary = ImportedRepo;

/** Directory for staging files under the PDS data directory. */
export function stagingDirectoryFor(dataDirectory: string): string {
  return join(dataDirectory, 'import-staging');
}

/**
 * Verifies the CAR in `body` as `did`'s repository and makes it the account's repository.
 * Throws a 400 whose error name says what was wrong (WrongDid, BadSignature, MissingRecord,
 * MissingNode, BadBlockHash, TruncatedCar, ...).
 */
export async function importRepository(
  deps: RepoImportDeps,
  did: string,
  body: AsyncIterable<Uint8Array>,
): Promise<ImportSummary> {
  // Looked up (round trips to the directory) while the CAR streams in; the commit check awaits it.
  const keys = signingKeysHeldBy(deps, did).then((held) => {
    if (held.length > 0) return held;
    throw new XrpcError(
      400,
      'InvalidDid',
      `Could not resolve a signing key for ${did}, so the import cannot be verified`,
    );
  });
  keys.catch(() => {}); // a CAR that fails before its commit is checked never awaits it
  const staging = new StagingBlockStore(deps.stagingDirectory);
  try {
    let staged: StagedRepo;
    try {
      staged = await stageRepo(body, { did, signingKeys: keys, staging });
    } catch (err) {
      throw importError(err);
    }
    let summary: ImportSummary;
    try {
      summary = await deps.actorStore.importRepository(did, staged, { stagedInMemory: !staging.spilled });
    } catch (err) {
      throw importError(err);
    }
    await deps.actorStore.promoteReferencedBlobs(did);
    return summary;
  } finally {
    staging.dispose();
  }
}

function importError(err: unknown): unknown {
  if (err instanceof RepoError) {
    const prefix = err.code === 'BadSignature' ? 'Commit signature is not valid for this DID' : 'Invalid repository';
    return new XrpcError(400, err.code, `${prefix}: ${err.message}`);
  }
  return err;
}

/** What an imported CAR may weigh: PDS_MAX_REPO_IMPORT_SIZE, else a limit any real account fits in. */
export function maxImportBytes(configured: number | undefined): number {
  return configured ?? DEFAULT_MAX_REPO_IMPORT_BYTES;
}
