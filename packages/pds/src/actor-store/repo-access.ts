/**
 * What repo and sync endpoints share before and after touching a repository: finding the
 * hosted account a `repo`/`did` parameter names (handle or DID), refusing writes to someone
 * else's repository, refusing reads of deactivated or taken-down ones, and the `commit`
 * object of write responses. Error names and messages follow the reference PDS.
 */
import { formatCid } from '@portage/atproto/cid';
import { XrpcError } from '../xrpc/errors.ts';
import type { RepoRoot } from './types.ts';

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
  if (account.deactivatedAt) throw new XrpcError(400, 'InvalidRequest', 'Account is deactivated');
  return account.did;
}

/** A hosted repository to read through com.atproto.repo.* (handle or DID). */
export function readableRepo(accounts: RepoAccountLookup, repo: string): RepoAccount {
  const account = accounts.getAccount(repo);
  if (!account || account.takedownRef) throw new XrpcError(400, 'InvalidRequest', `Could not find repo: ${repo}`);
  return account;
}

/**
 * A hosted repository for com.atproto.sync.* reads (DID only). `allowInactive` is for
 * getRepoStatus, which reports the status instead of failing.
 */
export function syncRepo(accounts: RepoAccountLookup, did: string, allowInactive = false): RepoAccount {
  const account = did.startsWith('did:') ? accounts.getAccount(did) : undefined;
  if (!account) throw new XrpcError(400, 'RepoNotFound', `Could not find repo for DID: ${did}`);
  if (!allowInactive) {
    if (account.takedownRef) throw new XrpcError(400, 'RepoTakendown', `Repo has been takendown: ${did}`);
    if (account.deactivatedAt) throw new XrpcError(400, 'RepoDeactivated', `Repo has been deactivated: ${did}`);
  }
  return account;
}

export function commitMeta(root: RepoRoot): { cid: string; rev: string } {
  return { cid: formatCid(root.cid), rev: root.rev };
}
