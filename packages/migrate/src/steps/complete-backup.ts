/** Step "backup": the local backup made whole (repository, preferences, every blob the old server lists). */
import { BlobPrefetch } from '../blobs.ts';
import type { RunContext, RunState } from './run.ts';

/**
 * Makes the backup whole even when earlier runs were killed mid-way or kept no backup (blobs
 * copied but not saved): a prefetch of its own, run to the end, downloads what the backup lacks.
 */
export async function completeBackup(ctx: RunContext, state: RunState): Promise<string> {
  const { listed, fetched, failed } = await new BlobPrefetch({
    did: state.did,
    old: state.old!,
    backup: state.backup!,
    concurrency: ctx.concurrency,
  }).complete();
  for (const [cid, reason] of failed) {
    ctx.emit({ type: 'warning', step: 'backup', message: `blob ${cid} is not in the backup: ${reason}` });
  }
  return `the backup holds the repo, preferences and ${listed - failed.size} blobs${fetched ? ` (${fetched} fetched now)` : ''}`;
}
