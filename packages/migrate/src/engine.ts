/**
 * The migration engine: moves one account from its PDS to another, as a plan of steps that are
 * each idempotent and re-entrant. Nothing is assumed from a previous run: every step first asks
 * the servers where things stand (checkAccountStatus, listMissingBlobs, the DID document and PLC
 * log) and only does what is still missing, so killing the process at any moment and running it
 * again finishes the job with nothing duplicated or lost. The journal (through MigrationStorage)
 * only keeps what the servers cannot tell us: the old server's URL once the DID points away from
 * it, blobs that failed for good, a signed-but-unsubmitted PLC operation.
 *
 * Ordering is the safety argument: everything reversible (new account, repo, blobs, preferences)
 * happens and is verified before the one irreversible step (the identity update), and the PLC
 * token is requested only then, so it cannot expire while data moves. Deactivating the old
 * account comes last and on its own: its failure never undoes a finished migration.
 *
 * This module is the plan; each step is a module of ./steps/, a function of the run's context
 * (fixed) and state (handed on from step to step; its journal outlives the run).
 *
 * Runs unchanged in Node and browsers: only fetch, web streams and @portage/atproto are used;
 * storage, backup, DNS and prompting come in through MigrationEnvironment.
 */
import { DidResolver } from '@portage/atproto/identity/did-resolver';
import type { MigrationEnvironment, MigrationOptions, MigrationResult } from './environment.ts';
import { STEP_TITLES, type MigrationStatus, type StepName } from './events.ts';
import { checkedServiceUrl, toMigrationError } from './failure.ts';
import { describeNextStep, type NextStep } from './next-steps.ts';
import { BudgetSpent, DEFAULT_LONGEST_WAIT_MS } from './retry.ts';
import { PdsSession } from './session.ts';
import { checkBeforeMoving, startMeasuringBlobs } from './steps/checks.ts';
import { completeBackup } from './steps/complete-backup.ts';
import { copyBlobs } from './steps/copy-blobs.ts';
import { createAccount } from './steps/create-account.ts';
import { activate, deactivateOld } from './steps/finish.ts';
import { updateIdentity } from './steps/identity.ts';
import { describeNewServer, inspectNewServer } from './steps/inspect-new.ts';
import { copyPreferences } from './steps/preferences.ts';
import { copyRepo, downloadRepo } from './steps/repo.ts';
import { resolveAccount } from './steps/resolve.ts';
import {
  initialState,
  RepoMoved,
  type RunContext,
  type RunState,
  saveState,
  type StepOutcome,
  Waiting,
} from './steps/run.ts';
import { signInOld } from './steps/sign-in.ts';
import { verify } from './steps/verify.ts';

export type {
  MigrationCredentials,
  MigrationEnvironment,
  MigrationOptions,
  MigrationResult,
  RecoveryKeyStore,
} from './environment.ts';
export { checkedServiceUrl, toMigrationError } from './failure.ts';
export { formatBytes } from './progress.ts';
export { UNCOMPRESSED_REPO } from './steps/run.ts';

/** Rounds of the data steps when the old repository keeps changing under the copy. */
const DATA_ROUNDS = 3;

export async function migrate(options: MigrationOptions, env: MigrationEnvironment): Promise<MigrationResult> {
  const stop = new AbortController();
  const fetchImpl = env.fetch ?? globalThis.fetch.bind(globalThis);
  // Every URL is checked before anything runs, so a typo stops the run with nothing changed.
  const to = checkedServiceUrl(options.to, 'to');
  const fromPds = options.fromPds === undefined ? undefined : checkedServiceUrl(options.fromPds, 'fromPds');
  const plcUrl = checkedServiceUrl(options.plcUrl ?? 'https://plc.directory', 'plcUrl');
  const ctx: RunContext = {
    options,
    env,
    to,
    fromPds,
    plcUrl,
    fetch: fetchImpl,
    didResolver: new DidResolver({ plcUrl, fetch: fetchImpl }),
    concurrency: options.concurrency ?? 8,
    longestWaitMs: options.longestWaitMs ?? DEFAULT_LONGEST_WAIT_MS,
    stopping: stop.signal,
    emit: (event) => env.onEvent(event),
  };
  const state = initialState();
  try {
    return await plan(ctx, state);
  } catch (err) {
    if (err instanceof BudgetSpent && state.journal) return stoppedUntil(ctx, state, err);
    return failed(ctx, state, err);
  } finally {
    stop.abort();
    await state.repoDownload;
    await state.blobSizes;
    await state.prefetch?.stop();
    await state.releaseLock?.().catch(() => {});
  }
}

async function step(ctx: RunContext, state: RunState, name: StepName, fn: () => Promise<StepOutcome>): Promise<void> {
  state.current = name;
  ctx.emit({ type: 'step-started', step: name, title: STEP_TITLES[name] });
  const result = await fn();
  if (typeof result === 'string') ctx.emit({ type: 'step-done', step: name, summary: result });
  else ctx.emit({ type: 'step-done', step: name, summary: result.summary, skipped: true });
}

function skip(ctx: RunContext, name: StepName, summary: string): void {
  ctx.emit({ type: 'step-started', step: name, title: STEP_TITLES[name] });
  ctx.emit({ type: 'step-done', step: name, summary, skipped: true });
}

async function plan(ctx: RunContext, state: RunState): Promise<MigrationResult> {
  await step(ctx, state, 'resolve', () => resolveAccount(ctx, state));
  state.old = new PdsSession(state.journal!.oldPds, state.did, ctx.fetch, ctx.longestWaitMs);
  // Neither needs a session: they run while the old server checks the password.
  state.description = describeNewServer(ctx);
  state.description.catch(() => {}); // awaited by inspect-new
  if (ctx.env.openBackup) state.backup = await ctx.env.openBackup(state.did);
  if (state.backup && !state.identityMoved) state.repoDownload = downloadRepo(ctx, state, state.backup);
  if (!state.identityMoved) state.blobSizes = startMeasuringBlobs(ctx, state);
  await step(ctx, state, 'login-old', () => signInOld(ctx, state));
  await step(ctx, state, 'inspect-new', () => inspectNewServer(ctx, state));
  await step(ctx, state, 'checks', () => checkBeforeMoving(ctx, state));
  await step(ctx, state, 'create-account', () => createAccount(ctx, state));

  if (state.identityMoved) {
    for (const s of ['repo', 'blobs', 'preferences', 'backup', 'verify', 'identity'] as const) {
      skip(ctx, s, 'already done (the DID already points to the new server)');
    }
  } else {
    // The blob step stops the prefetch, and migrate() does whatever ends the plan.
    for (let round = 1; ; round++) {
      try {
        await step(ctx, state, 'repo', () => copyRepo(ctx, state));
        await step(ctx, state, 'blobs', () => copyBlobs(ctx, state));
        await step(ctx, state, 'preferences', () => copyPreferences(ctx, state));
        if (state.backup) await step(ctx, state, 'backup', () => completeBackup(ctx, state));
        await step(ctx, state, 'verify', () => verify(state));
        break;
      } catch (err) {
        if (!(err instanceof RepoMoved) || round >= DATA_ROUNDS) throw err;
        ctx.emit({ type: 'warning', step: state.current, message: `${err.message}; copying the changes` });
      }
    }
    await step(ctx, state, 'identity', () => updateIdentity(ctx, state));
  }
  await step(ctx, state, 'activate', () => activate(ctx, state));

  let status: MigrationStatus = 'done';
  let message = `${state.did} now lives on ${ctx.to}; the new account is active and the old one is deactivated.`;
  try {
    await step(ctx, state, 'deactivate-old', () => deactivateOld(ctx, state));
  } catch (err) {
    const failure = toMigrationError(err, 'deactivate-old');
    status = 'done-old-still-active';
    message =
      `${state.did} now lives on ${ctx.to} and is active there, but deactivating the old account failed ` +
      `(${failure.message}). The migration is complete; run again to retry only that step.`;
    const nextStep: NextStep = { kind: 'run-again', reason: 'deactivate-old' };
    ctx.emit({
      type: 'step-failed',
      step: 'deactivate-old',
      message: failure.message,
      next: describeNextStep(nextStep),
      nextStep,
      code: failure.code,
    });
  }
  ctx.emit({ type: 'finished', status, message });
  return { status, did: state.did, message };
}

/** A daily limit is spent: the time to go on is saved and said; a later run resumes the blobs. */
async function stoppedUntil(ctx: RunContext, state: RunState, spent: BudgetSpent): Promise<MigrationResult> {
  const at = new Date(spent.until).toISOString();
  state.journal!.resumeAfter = at;
  await saveState(ctx, state);
  const next: NextStep = { kind: 'resume-after', at };
  const which = spent.service === state.old?.service ? 'old' : 'new';
  const message = `the ${which} server's request budget is spent until ${at} (a daily limit); everything copied so far is kept`;
  ctx.emit({ type: 'finished', status: 'resume-later', message, nextStep: next });
  return { status: 'resume-later', did: state.did, message, next };
}

function failed(ctx: RunContext, state: RunState, err: unknown): MigrationResult {
  if (err instanceof Waiting) {
    const message = err.message;
    const next: NextStep = { kind: 'need-plc-code', reason: 'emailed' };
    ctx.emit({ type: 'finished', status: 'waiting-for-plc-token', message, nextStep: next });
    return { status: 'waiting-for-plc-token', did: state.did, message, next };
  }
  const failure = toMigrationError(err, state.current);
  const missing = failure.code === 'MissingBlobs' ? [...state.failedBlobs.values()] : undefined;
  const next = failure.nextStep;
  ctx.emit({
    type: 'step-failed',
    step: state.current,
    message: failure.message,
    next: failure.next,
    nextStep: next,
    code: failure.code,
  });
  const message = `${failure.message}. ${failure.next}`;
  const extra = missing ? { missingBlobs: missing } : {};
  ctx.emit({ type: 'finished', status: 'failed', message, nextStep: next, ...extra });
  return { status: 'failed', did: state.did, message, next, ...extra };
}
