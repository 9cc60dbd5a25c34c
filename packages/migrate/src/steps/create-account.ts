/**
 * Step "create-account": the account on the new server, made with a service token from the old
 * one (deactivated until the move ends), or the one an earlier run made, signed in to.
 */
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import { retryDelayFromHeaders } from '@portage/atproto/xrpc/rate-limit';
import { MigrationError } from '../errors.ts';
import type { NextStep } from '../next-steps.ts';
import { sleep } from '../retry.ts';
import type { AccountStatus } from '@portage/atproto/xrpc/account-status';
import type { PdsSession, SessionInfo } from '../session.ts';
import { type RunContext, type RunState, saveState } from './run.ts';
import { NOT_ON_NEW_SERVER, signIn, signsIn } from './sign-in.ts';

export async function createAccount(ctx: RunContext, state: RunState): Promise<string> {
  const neu = state.neu!;
  const password = state.newPassword;
  const refused = await state.newLogin;
  if (refused !== NOT_ON_NEW_SERVER) {
    try {
      if (refused !== undefined) {
        // A sign-in code, like any other answer, is asked for here, not while the old server's
        // sign-in may be asking for its own.
        if (!(refused instanceof XrpcClientError) || refused.error !== 'AuthFactorTokenRequired') throw refused;
        await signIn(ctx, state, neu, password, 'new');
      }
      return await earlierAccount(neu);
    } catch (err) {
      if (!(err instanceof XrpcClientError) || err.status !== 401) throw err;
    }
  }
  if (state.identityMoved) {
    throw new MigrationError('NewLoginFailed', `the DID already points to ${ctx.to}, but signing in there failed`, {
      kind: 'need-input',
      field: 'newPassword',
      reason: 'wrong',
    });
  }

  // The checks step made sure of these before anything changed.
  const { handle, email, holder } = state.newAccount!;
  if (holder === state.did) {
    // A createAccount sent by a run that was stopped may have landed since the sign-in above.
    if (await signsIn(neu, password)) return earlierAccount(neu);
    throw new MigrationError(
      'NewPasswordMismatch',
      `${ctx.to} already has this account (from an earlier attempt), but refused the new password`,
      { kind: 'need-input', field: 'newPassword', reason: 'mismatch' },
    );
  }
  const info = await createAccountCall(ctx, state, { handle, email, password });
  if (info) neu.adopt(info);
  state.journal!.newHandle = handle;
  await saveState(ctx, state);
  return `created the account as ${handle} (deactivated until the migration finishes)`;
}

/** Says that the new server has the account already (signed in to, from an earlier run). */
async function earlierAccount(neu: PdsSession): Promise<string> {
  const status = await neu.query<AccountStatus>('com.atproto.server.checkAccountStatus');
  return `the account from an earlier run is there (${status.activated ? 'active' : 'not yet active'})`;
}

/**
 * createAccount, retried on network errors and 5xx. The answer may be lost after the server made
 * the account, so before each retry a login tells whether it exists now.
 */
async function createAccountCall(
  ctx: RunContext,
  state: RunState,
  input: { handle: string; email: string; password: string },
): Promise<SessionInfo | undefined> {
  const neu = state.neu!;
  const inviteCode = ctx.options.inviteCode;
  for (let attempt = 1; ; attempt++) {
    // A fresh service token each attempt: they are short-lived.
    const auth = await state.old!.query<{ token: string }>('com.atproto.server.getServiceAuth', {
      aud: state.newServiceDid,
      lxm: 'com.atproto.server.createAccount',
      // By the old server's clock, which signs it: this device's may be off.
      exp: Math.floor((Date.now() + (state.oldClockOffsetMs ?? 0)) / 1000) + 300,
    });
    try {
      return await neu.anonymous.procedure<SessionInfo>(
        'com.atproto.server.createAccount',
        { did: state.did, ...input, ...(inviteCode ? { inviteCode } : {}) },
        { headers: { authorization: `Bearer ${auth.token}` }, timeoutMs: 120_000 },
      );
    } catch (err) {
      if (err instanceof XrpcClientError && err.retryable && attempt < 6) {
        await sleep(err.status === 429 ? (retryDelayFromHeaders(err.headers) ?? 5000) : 300 * 2 ** attempt);
        if (await signsIn(neu, input.password)) return undefined;
        continue;
      }
      // Refused as a duplicate: a run stopped after sending createAccount may have made the
      // account moments ago. Signing in with this password tells whether it is ours.
      if (err instanceof XrpcClientError && (await signsIn(neu, input.password))) return undefined;
      if (err instanceof XrpcClientError) {
        const next: NextStep = { ...createAccountRefusal(err), nothingChanged: true };
        throw new MigrationError(err.error, `the new server refused to create the account: ${err.message}`, next, {
          cause: err,
        });
      }
      throw err;
    }
  }
}

/** Which input the new server's refusal of createAccount is about, by its error name and wording. */
export function createAccountRefusal(err: XrpcClientError): NextStep {
  if (err.error === 'InvalidInviteCode') return { kind: 'need-input', field: 'inviteCode', reason: 'invalid' };
  if (
    err.error === 'HandleNotAvailable' ||
    (/andle/.test(err.message) && /taken|in use|not available/i.test(err.message))
  ) {
    return { kind: 'need-input', field: 'newHandle', reason: 'taken' };
  }
  if (err.error === 'InvalidHandle' || err.message.includes('andle')) {
    return { kind: 'need-input', field: 'newHandle', reason: 'invalid' };
  }
  if (err.message.includes('mail')) {
    return {
      kind: 'need-input',
      field: 'newEmail',
      reason: /in use|taken|already/i.test(err.message) ? 'taken' : 'invalid',
    };
  }
  return { kind: 'advice', text: 'Fix the problem named above and run again.' };
}
