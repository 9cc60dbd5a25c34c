/**
 * Steps "activate" and "deactivate-old": the new account goes live once the identity names it;
 * the old one is deactivated last and on its own (its failure never undoes a finished move).
 */
import { MigrationError } from '../errors.ts';
import type { AccountStatus } from '@portage/atproto/xrpc/account-status';
import { type RunContext, type RunState, saveState, type StepOutcome } from './run.ts';

export async function activate(ctx: RunContext, state: RunState): Promise<StepOutcome> {
  const neu = state.neu!;
  // Only a run that found the identity moved can follow one that activated the account (the
  // identity moves first): a fresh run activates without asking.
  if (state.identityMoved || state.journal!.activatedAt) {
    const status = await neu.query<AccountStatus>('com.atproto.server.checkAccountStatus');
    if (status.activated) return { summary: 'already active', skipped: true };
  }
  await neu.procedure('com.atproto.server.activateAccount');
  state.journal!.activatedAt = new Date().toISOString();
  await saveState(ctx, state);
  return `${state.did} is active on ${ctx.to}`;
}

export async function deactivateOld(ctx: RunContext, state: RunState): Promise<StepOutcome> {
  const old = state.old!;
  if (!old.signedIn) {
    throw new MigrationError('OldLoginFailed', 'could not sign in to the old server', {
      kind: 'run-again',
      reason: 'deactivate-old',
    });
  }
  if (state.journal!.oldDeactivatedAt || old.info?.active === false) {
    return { summary: 'already deactivated', skipped: true };
  }
  await old.procedure('com.atproto.server.deactivateAccount', {});
  state.journal!.oldDeactivatedAt = new Date().toISOString();
  await saveState(ctx, state);
  return `deactivated the account on ${old.service} (kept for 90 days by most servers; delete it there when you are sure)`;
}
