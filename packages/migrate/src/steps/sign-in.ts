/**
 * Step "login-old": both passwords are asked first, then both servers check theirs at once (the
 * new one only when it may already hold the account, from an earlier run). Also the sign-in with
 * an emailed code that both servers may ask for. When the caller signed in to the old server
 * without the password (an OAuth session), that session is used and no old password is asked.
 */
import { XrpcClientError } from '@portage/atproto/xrpc/client';
import { MigrationError } from '../errors.ts';
import { describeError } from '../retry.ts';
import { type DelegatedSession, PdsSession } from '../session.ts';
import type { RunContext, RunState } from './run.ts';

/** What the new server's sign-in check gives when that server does not host the DID at all. */
export const NOT_ON_NEW_SERVER = Symbol('not on the new server');

export async function signInOld(ctx: RunContext, state: RunState): Promise<string> {
  const old = state.old!;
  const delegated = await ctx.env.credentials.oldSession?.();
  const password = delegated ? undefined : await ctx.env.credentials.oldPassword();
  // Both passwords are asked first, then both servers check theirs at once.
  state.newPassword = await ctx.env.credentials.newPassword();
  state.neu = new PdsSession(ctx.to, state.did, ctx.fetch, ctx.longestWaitMs);
  state.newLogin = loginNewIfHosted(state.neu, state.did, state.newPassword);
  try {
    if (delegated) await signInDelegated(old, delegated);
    else await signIn(ctx, state, old, password!, 'old');
  } catch (err) {
    if (!state.identityMoved) throw err;
    // After the DID moved, the old server only matters for the final deactivation.
    ctx.emit({
      type: 'warning',
      step: 'login-old',
      message: `could not sign in to the old server: ${describeError(err)}`,
    });
    return 'skipped: the migration no longer needs the old server except to deactivate it';
  }
  const info = old.info!;
  // An OAuth session's scopes are what the user granted; only a password session can be an app password's.
  const scope = old.accessJwt === undefined ? undefined : jwtScope(old.accessJwt);
  if (scope !== 'com.atproto.access' && scope !== undefined) {
    throw new MigrationError(
      'AppPassword',
      'that is an app password; moving an account needs the main account password',
      { kind: 'need-input', field: 'oldPassword', reason: 'app-password', nothingChanged: true },
    );
  }
  return `signed in to ${old.service} as ${info.handle}${info.active === false ? ` (account ${info.status ?? 'deactivated'})` : ''}`;
}

/** Reads the account through the caller's OAuth session; a session the server no longer honours asks for a new sign-in. */
async function signInDelegated(old: PdsSession, session: DelegatedSession): Promise<void> {
  try {
    await old.delegate(session);
  } catch (err) {
    if (err instanceof MigrationError && err.code === 'SignedOut') {
      throw new MigrationError(err.code, err.message, { ...err.nextStep, nothingChanged: true }, { cause: err.cause });
    }
    if (err instanceof XrpcClientError && err.error === 'AccountTakedown') {
      throw new MigrationError('OldAccountUnavailable', `the old server has taken down the account (${err.error})`, {
        kind: 'old-account-unavailable',
        status: 'takendown',
        nothingChanged: true,
      });
    }
    throw err;
  }
}

/**
 * Signs in to the new server when it may hold the account already (made by an earlier run, or
 * by hand), to resume with it. Most runs start on a server that has never seen the DID: a public
 * getRepoStatus says so, and the sign-in, doomed to fail, is not sent. A failed sign-in is not
 * free: the server spends a password hash on it (or a padded wait), and it counts against the
 * account's sign-in rate limit and may alarm its operator. Resolves to undefined once signed in,
 * NOT_ON_NEW_SERVER, or the sign-in's refusal.
 */
async function loginNewIfHosted(neu: PdsSession, did: string, password: string): Promise<unknown> {
  try {
    await neu.anonymous.query('com.atproto.sync.getRepoStatus', { did }, { timeoutMs: 30_000 });
  } catch (err) {
    // Any other answer (an older server without the method, a failure) proves nothing: sign in.
    if (err instanceof XrpcClientError && err.error === 'RepoNotFound') return NOT_ON_NEW_SERVER;
  }
  return neu.login(password).then(
    () => undefined,
    (err: unknown) => err,
  );
}

/** createSession, with the emailed sign-in code when the server asks for one. */
export async function signIn(
  ctx: RunContext,
  state: RunState,
  session: PdsSession,
  password: string,
  which: 'old' | 'new',
): Promise<void> {
  try {
    await session.login(password);
    return;
  } catch (err) {
    if (!(err instanceof XrpcClientError)) throw err;
    if (err.error === 'AuthFactorTokenRequired') {
      const code = await ctx.env.credentials.authFactorToken();
      if (!code) {
        throw new MigrationError(
          'AuthFactorTokenRequired',
          `the ${which} server emailed a sign-in code to the account's address`,
          { kind: 'need-sign-in-code', server: which, reason: 'emailed', nothingChanged: true },
        );
      }
      try {
        await session.login(password, code);
        return;
      } catch (again) {
        if (again instanceof XrpcClientError && again.status === 401) {
          throw new MigrationError('InvalidAuthFactorToken', `the ${which} server did not accept the sign-in code`, {
            kind: 'need-sign-in-code',
            server: which,
            reason: 'rejected',
            nothingChanged: true,
          });
        }
        throw again;
      }
    }
    if (err.error === 'AccountTakedown' && which === 'old') {
      throw new MigrationError('OldAccountUnavailable', `the old server has taken down the account (${err.error})`, {
        kind: 'old-account-unavailable',
        status: 'takendown',
        nothingChanged: true,
      });
    }
    if (err.status === 401 && which === 'old') {
      throw new MigrationError(
        'WrongPassword',
        `${session.service} refused the password for ${state.did} (${err.error})`,
        { kind: 'need-input', field: 'oldPassword', reason: 'wrong', nothingChanged: true },
      );
    }
    throw err;
  }
}

/** Whether the account exists on that server with this password (the session is kept if so). */
export function signsIn(session: PdsSession, password: string): Promise<boolean> {
  return session.login(password).then(
    () => true,
    () => false,
  );
}

/** The `scope` claim of a JWT, read without verifying (only to give early advice). */
function jwtScope(jwt: string): string | undefined {
  try {
    const payload = jwt.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/');
    const json = JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), '='))) as {
      scope?: unknown;
    };
    return typeof json.scope === 'string' ? json.scope : undefined;
  } catch {
    return undefined;
  }
}
