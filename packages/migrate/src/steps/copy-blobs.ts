/** Step "blobs": every blob the new server's records reference and it lacks (see ../blobs.ts). */
import { copyMissingBlobs } from '../blobs.ts';
import { formatBytes, ProgressTracker } from '../progress.ts';
import { BudgetSpent, sleep } from '../retry.ts';
import type { AccountStatus } from '@portage/atproto/xrpc/account-status';
import { type RunContext, type RunState, saveState } from './run.ts';

export async function copyBlobs(ctx: RunContext, state: RunState): Promise<string> {
  try {
    await waitForBudget(ctx, state);
    const summary = await copyMissing(ctx, state);
    if (state.journal!.resumeAfter) {
      state.journal!.resumeAfter = undefined;
      await saveState(ctx, state);
    }
    return summary;
  } finally {
    // The backup step fetches whatever else the backup lacks; the prefetch must not race it
    // (also when the new server needed no blob at all).
    await state.prefetch?.stop();
  }
}

/**
 * An earlier run stopped at a spent budget (a daily upload limit): before its refill, this run
 * stops again at once (when the wait is long) or waits for it (when it is short).
 */
async function waitForBudget(ctx: RunContext, state: RunState): Promise<void> {
  const after = state.journal!.resumeAfter;
  if (!after) return;
  const until = Date.parse(after);
  const left = until - Date.now();
  if (!(left > 0)) return;
  if (left > ctx.longestWaitMs) throw new BudgetSpent(until, ctx.to);
  ctx.emit({
    type: 'warning',
    step: 'blobs',
    message: `waiting until ${after}, when the new server takes uploads again`,
  });
  await sleep(left, ctx.stopping);
}

async function copyMissing(ctx: RunContext, state: RunState): Promise<string> {
  const status = await state.neu!.query<AccountStatus>('com.atproto.server.checkAccountStatus');
  const missing = Math.max(0, status.expectedBlobs - status.importedBlobs);
  if (missing === 0) return `all ${status.expectedBlobs} blobs are there`;
  const progress = new ProgressTracker('blobs', 'blobs', (e) => ctx.emit(e), missing);
  const copied = await copyMissingBlobs({
    did: state.did,
    old: state.old!,
    neu: state.neu!,
    backup: state.backup,
    concurrency: ctx.concurrency,
    progress,
    emit: (e) => ctx.emit(e),
    failed: state.failedBlobs,
    prefetch: state.prefetch,
  });
  progress.flush();
  state.journal!.failedBlobs = Object.fromEntries(state.failedBlobs);
  await saveState(ctx, state);
  const failed = state.failedBlobs.size;
  return `copied ${copied} blobs (${formatBytes(progress.figures().bytes)})${failed ? `; ${failed} could not be copied` : ''}`;
}
