/**
 * Step "repo": the old repository into the new server (importRepo), and into the backup. The
 * export starts early, right after resolve (`startRepoDownload`), since getRepo is public; the
 * blob prefetch starts once the old server has sent it, so the two never compete.
 */
import type { BackupSink } from '../backup.ts';
import { BlobPrefetch } from '../blobs.ts';
import { MigrationError } from '../errors.ts';
import { countingStream, formatBytes, ProgressTracker } from '../progress.ts';
import { describeError, type RetryOptions, withRetry } from '../retry.ts';
import type { AccountStatus } from '@portage/atproto/xrpc/account-status';
import {
  CAR,
  type LatestCommit,
  oldHead,
  type RunContext,
  type RunState,
  type StepOutcome,
  UNCOMPRESSED_REPO,
} from './run.ts';

/**
 * The old server's CAR into the backup, before anything else needs the old server: the export
 * is the slowest part of a migration from most servers, and it only needs the DID. The blob
 * prefetch starts when it ends, so the two never compete for the old server.
 */
export async function downloadRepo(
  ctx: RunContext,
  state: RunState,
  backup: BackupSink,
): Promise<LatestCommit | undefined> {
  const signal = ctx.stopping;
  try {
    const head = await state.old!.client.query<LatestCommit>(
      'com.atproto.sync.getLatestCommit',
      { did: state.did },
      { signal, timeoutMs: 30_000 },
    );
    if ((await backup.repoCommit()) === head.cid) return head;
    const res = await state.old!.request('com.atproto.sync.getRepo', {
      method: 'GET',
      params: { did: state.did },
      headers: UNCOMPRESSED_REPO,
      signal,
      timeoutMs: 60_000,
    });
    if (!res.body) return undefined;
    await backup.writeRepo(res.body, head.cid);
    return head;
  } catch {
    // A deactivated account's export needs the session, a cut connection a new attempt:
    // copyRepo does both.
    return undefined;
  } finally {
    if (!signal.aborted) startPrefetch(ctx, state);
  }
}

/** Starts filling the backup with blobs, once per run (the blob step stops it). */
function startPrefetch(ctx: RunContext, state: RunState): void {
  if (!state.backup || state.prefetch) return;
  state.prefetch = new BlobPrefetch({
    did: state.did,
    old: state.old!,
    backup: state.backup,
    concurrency: ctx.concurrency,
  });
}

export async function copyRepo(ctx: RunContext, state: RunState): Promise<StepOutcome> {
  // The head the export was taken at will do (the old server is busiest now, serving blobs):
  // verify compares the heads again at the end, and a change since then means another round.
  const exportedHead = await state.repoDownload;
  state.repoDownload = undefined;
  const backup = state.backup;
  const [head, status, backupCommit] = await Promise.all([
    exportedHead ?? oldHead(state),
    state.neu!.query<AccountStatus>('com.atproto.server.checkAccountStatus'),
    // The export's head is what the download just stored in the backup.
    exportedHead ? exportedHead.cid : backup?.repoCommit(),
  ]);
  const backupCurrent = !backup || backupCommit === head.cid;
  if (status.repoCommit === head.cid && backupCurrent) {
    return { summary: `already imported (rev ${head.rev})`, skipped: true };
  }
  const needImport = status.repoCommit !== head.cid;
  const progress = new ProgressTracker('repo', 'bytes', (e) => ctx.emit(e));
  if (needImport && backupCurrent && backup?.readRepo) {
    const imported = await importFromBackup(ctx, state, backup, progress);
    if (imported) return checkImport(state, head, progress, 'imported');
  }
  await withRetry(
    async () => {
      const res = await state.old!.request('com.atproto.sync.getRepo', {
        method: 'GET',
        params: { did: state.did },
        headers: UNCOMPRESSED_REPO,
      });
      if (!res.body)
        throw new MigrationError('EmptyRepo', 'the old server sent an empty repository', {
          kind: 'run-again',
          reason: 'unavailable',
        });
      const length = Number(res.headers.get('content-length'));
      if (length > 0) progress.setTotal(length);
      let body = res.body.pipeThrough(countingStream((n) => progress.addBytes(n)));
      let backupWrite: Promise<void> | undefined;
      if (backup && !backupCurrent) {
        const [toImport, toBackup] = needImport ? body.tee() : [undefined, body];
        backupWrite = backup.writeRepo(toBackup, head.cid);
        // The old server's part is done once the CAR is stored: blobs may come now.
        backupWrite.then(() => startPrefetch(ctx, state)).catch(() => {});
        if (!toImport) return void (await backupWrite);
        body = toImport;
      }
      // The body streams straight through: a large repo never sits whole in memory here.
      const out = await state.neu!.request('com.atproto.repo.importRepo', { method: 'POST', body, encoding: CAR });
      await out.body?.cancel();
      await backupWrite;
    },
    importRetry(ctx, state),
  );
  return checkImport(state, head, progress, needImport ? 'imported' : 'backed up');
}

/**
 * importRepo from the CAR the backup holds (it ends at the old head: the caller checked). False
 * when the backup cannot give it back after all; the caller then streams from the old server.
 */
async function importFromBackup(
  ctx: RunContext,
  state: RunState,
  backup: BackupSink,
  progress: ProgressTracker,
): Promise<boolean> {
  startPrefetch(ctx, state);
  return withRetry(
    async () => {
      const car = await backup.readRepo!();
      if (car === undefined) return false;
      const size = car instanceof Blob ? car.size : undefined;
      if (size !== undefined) progress.setTotal(size);
      const body = car instanceof Blob ? car : car.pipeThrough(countingStream((n) => progress.addBytes(n)));
      const out = await state.neu!.request('com.atproto.repo.importRepo', { method: 'POST', body, encoding: CAR });
      await out.body?.cancel();
      if (size !== undefined) progress.addBytes(size);
      return true;
    },
    importRetry(ctx, state),
  );
}

/** How the repo step retries an importRepo call: the new server's pace, a warning per failed attempt. */
function importRetry(ctx: RunContext, state: RunState): RetryOptions {
  return {
    attempts: 5,
    gate: state.neu!.gate,
    onRetry: (err, attempt) =>
      ctx.emit({
        type: 'warning',
        step: 'repo',
        message: `attempt ${attempt} failed (${describeError(err)}); retrying`,
      }),
  };
}

async function checkImport(
  state: RunState,
  head: LatestCommit,
  progress: ProgressTracker,
  what: string,
): Promise<string> {
  progress.flush();
  const after = await state.neu!.query<AccountStatus>('com.atproto.server.checkAccountStatus');
  if (after.repoCommit !== head.cid) {
    throw new MigrationError(
      'ImportMismatch',
      `after the import the new server is at commit ${after.repoCommit}, the old one at ${head.cid}`,
      { kind: 'run-again', reason: 'mismatch' },
    );
  }
  return `${what} ${formatBytes(progress.figures().bytes)} (rev ${head.rev}, ${after.indexedRecords} records)`;
}
