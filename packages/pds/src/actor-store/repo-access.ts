/**
 * What repo and sync endpoints share before and after touching a repository: finding the
 * hosted account a `repo`/`did` parameter names (handle or DID), refusing writes to someone
 * else's repository, refusing reads of deactivated or taken-down ones, and the one path every
 * record write takes (`writeOwnRepo`). Error names and messages follow the reference PDS.
 */
import { cidEquals, formatCid, parseCid } from '@portage/atproto/cid';
import { type AuthResult, isOwnerOrAdmin } from '../auth/verifier.ts';
import { InvalidRequest, XrpcError } from '../xrpc/errors.ts';
import type { ActorStore } from './actor-store.ts';
import { prepareWrites, type WriteRequest } from './prepare-writes.ts';
import type { RepoRoot, WriteResult } from './types.ts';
import { withRepoErrors } from './xrpc-errors.ts';

/** The part of an account record these checks need (the account manager's Account has it). */
export interface RepoAccount {
  did: string;
  handle: string | null;
  deactivatedAt: string | null;
  takedownRef: string | null;
}

export interface RepoAccountLookup {
  getAccount(handleOrDid: string): RepoAccount | undefined;
}

/** `active` and `status` as sync.getRepoStatus and listRepos report them. */
export function accountStatus(account: RepoAccount): { active: boolean; status?: 'takendown' | 'deactivated' } {
  if (account.takedownRef) return { active: false, status: 'takendown' };
  if (account.deactivatedAt) return { active: false, status: 'deactivated' };
  return { active: true };
}

/** The DID of the caller's own repository; `repo` must name the authenticated account. */
export function ownRepoDid(accounts: RepoAccountLookup, repo: string, authDid: string): string {
  const account = accounts.getAccount(repo);
  if (!account) throw new XrpcError(400, 'InvalidRequest', `Could not find repo: ${repo}`);
  if (account.did !== authDid) throw new XrpcError(401, 'AuthenticationRequired', 'Authentication Required');
  // An access token issued before the takedown is still unexpired: writes check the account.
  if (account.takedownRef) throw new XrpcError(401, 'AccountTakedown', 'Account has been taken down');
  if (account.deactivatedAt) throw new XrpcError(400, 'InvalidRequest', 'Account is deactivated');
  return account.did;
}

/** A hosted repository to read through com.atproto.repo.* (handle or DID). */
export function readableRepo(accounts: RepoAccountLookup, repo: string): RepoAccount {
  const account = accounts.getAccount(repo);
  if (!account || account.takedownRef) throw new XrpcError(400, 'InvalidRequest', `Could not find repo: ${repo}`);
  return account;
}

/** A hosted repository by DID, whatever its status (getRepoStatus reports the status instead of failing). */
export function hostedRepo(accounts: RepoAccountLookup, did: string): RepoAccount {
  const account = did.startsWith('did:') ? accounts.getAccount(did) : undefined;
  if (!account) throw new XrpcError(400, 'RepoNotFound', `Could not find repo for DID: ${did}`);
  return account;
}

/**
 * A hosted repository for com.atproto.sync.* reads (DID only): refused while taken down or
 * deactivated, except to its owner and the admin, as the reference allows.
 */
export function syncRepo(accounts: RepoAccountLookup, did: string, reader: AuthResult): RepoAccount {
  const account = hostedRepo(accounts, did);
  if (!isOwnerOrAdmin(reader, did)) {
    if (account.takedownRef) throw new XrpcError(400, 'RepoTakendown', `Repo has been takendown: ${did}`);
    if (account.deactivatedAt) throw new XrpcError(400, 'RepoDeactivated', `Repo has been deactivated: ${did}`);
  }
  return account;
}

export function commitMeta(root: RepoRoot): { cid: string; rev: string } {
  return { cid: formatCid(root.cid), rev: root.rev };
}

/** What a write endpoint asks of `writeOwnRepo`. */
export interface OwnRepoWrite {
  /** The `repo` parameter: handle or DID, which must be the caller's. */
  repo: string;
  /** The `swapCommit` parameter: the commit the caller expects to build on. */
  swapCommit: string | undefined;
  /** The writes, asked for once the repository's DID is known (putRecord looks at the current record). */
  writes(did: string): WriteRequest[];
  /**
   * Asked after the writes are checked: true when there is nothing to commit (deleteRecord of a
   * record that is not there). Then only swapCommit is checked and no commit is made.
   */
  nothingToWrite?(did: string): boolean;
}

export interface OwnRepoWriteResult {
  /** The `commit` object of the response; undefined when nothing was written. */
  commit: { cid: string; rev: string } | undefined;
  results: WriteResult[];
}

/**
 * The write path of createRecord, putRecord, deleteRecord and applyWrites: the caller's own
 * repository, its writes checked and encoded, one commit through the actor store (shared with
 * concurrent writers by group commit), and the commit object of the response. Typed errors
 * leave as the XRPC errors the reference uses.
 */
export async function writeOwnRepo(
  ctx: { accountManager: RepoAccountLookup; actorStore: Pick<ActorStore, 'applyWrites' | 'getRoot'> },
  authDid: string,
  request: OwnRepoWrite,
): Promise<OwnRepoWriteResult> {
  const did = ownRepoDid(ctx.accountManager, request.repo, authDid);
  return withRepoErrors(async () => {
    const writes = prepareWrites(request.writes(did));
    const swapCommit = request.swapCommit === undefined ? undefined : parseCid(request.swapCommit);
    if (request.nothingToWrite?.(did)) {
      const root = ctx.actorStore.getRoot(did);
      if (swapCommit && root && !cidEquals(swapCommit, root.cid)) {
        throw InvalidRequest(`Commit was at ${formatCid(root.cid)}`, 'InvalidSwap');
      }
      return { commit: undefined, results: [] };
    }
    const { commit, results } = await ctx.actorStore.applyWrites(did, writes, { swapCommit });
    return { commit: commitMeta(commit), results };
  });
}

/** The response of createRecord and putRecord: the one record written and the commit. */
export function writtenRecordView({ commit, results }: OwnRepoWriteResult): {
  uri: string;
  cid: string;
  commit: { cid: string; rev: string } | undefined;
  validationStatus: string | undefined;
} {
  const written = results[0]!;
  return { uri: written.uri, cid: formatCid(written.cid!), commit, validationStatus: written.validationStatus };
}
