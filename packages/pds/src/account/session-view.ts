/**
 * The session object createAccount, createSession, refreshSession and getSession answer
 * with, in the lexicon's shape. The account's email is shown only to sessions that may
 * see it (the account password or a privileged app password).
 */
import { type AccessScope, AuthScope } from '../auth/scopes.ts';
import type { Account } from './account-manager.ts';

/** What an account without a usable handle shows, as the reference does. */
export const INVALID_HANDLE = 'handle.invalid';

export function accountStatus(account: Account): { active: boolean; status?: string } {
  if (account.takedownRef) return { active: false, status: 'takendown' };
  if (account.deactivatedAt) return { active: false, status: 'deactivated' };
  return { active: true };
}

export function sessionView(
  account: Account,
  scope: AccessScope,
  tokens?: { accessJwt: string; refreshJwt: string },
): Record<string, unknown> {
  const mayReadEmail = scope === AuthScope.Access || scope === AuthScope.AppPassPrivileged;
  const { active, status } = accountStatus(account);
  return {
    ...(tokens ? { accessJwt: tokens.accessJwt, refreshJwt: tokens.refreshJwt } : {}),
    handle: account.handle ?? INVALID_HANDLE,
    did: account.did,
    ...(mayReadEmail && account.email
      ? {
          email: account.email,
          emailConfirmed: account.emailConfirmedAt !== null,
          emailAuthFactor: account.emailAuthFactor,
        }
      : {}),
    active,
    ...(status ? { status } : {}),
  };
}
