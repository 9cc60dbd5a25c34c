/**
 * The admin's view of an account (com.atproto.admin.defs#accountView), shared by getAccountInfo,
 * getAccountInfos and searchAccounts.
 */
import type { Account, AccountManager, InviteCodeInfo } from './account-manager.ts';
import { INVALID_HANDLE } from './session-view.ts';

export interface AdminAccountView {
  did: string;
  handle: string;
  email?: string;
  indexedAt: string;
  emailConfirmedAt?: string;
  invitedBy?: InviteCodeInfo;
  invites?: InviteCodeInfo[];
  invitesDisabled?: boolean;
  deactivatedAt?: string;
}

/** With `details`, the account's invite codes and the code it signed up with (getAccountInfo(s)). */
export function adminAccountView(accounts: AccountManager, account: Account, details: boolean): AdminAccountView {
  return {
    did: account.did,
    handle: account.handle ?? INVALID_HANDLE,
    email: account.email ?? undefined,
    indexedAt: account.createdAt,
    emailConfirmedAt: account.emailConfirmedAt ?? undefined,
    ...(details
      ? {
          invitedBy: accounts.invitedBy(account.did),
          invites: accounts.getAccountInviteCodes(account.did, { includeUsed: true }),
        }
      : {}),
    invitesDisabled: account.invitesDisabled,
    deactivatedAt: account.deactivatedAt ?? undefined,
  };
}
