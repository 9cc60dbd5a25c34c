/**
 * Step "verify": the new server holds what the old one does (same commit, record count, every
 * blob, equal preferences) before the identity moves. A repository that changed meanwhile sends
 * the data steps round again (RepoMoved).
 */
import { missingBlobsPage } from '../blobs.ts';
import { MigrationError } from '../errors.ts';
import type { MissingBlob } from '../events.ts';
import type { AccountStatus } from '@portage/atproto/xrpc/account-status';
import { oldHead, RepoMoved, type RunState } from './run.ts';

export async function verify(state: RunState): Promise<string> {
  const old = state.old!;
  const neu = state.neu!;
  // Every read at once: they are independent, and this step sits between the copy and the
  // identity update, with nothing else running.
  const [head, newStatus, oldStatus, firstMissing, oldPrefs, newPrefs] = await Promise.all([
    oldHead(state),
    neu.query<AccountStatus>('com.atproto.server.checkAccountStatus'),
    old.query<AccountStatus>('com.atproto.server.checkAccountStatus'),
    missingBlobsPage(neu, undefined),
    old.query<{ preferences: unknown[] }>('app.bsky.actor.getPreferences'),
    neu.query<{ preferences: unknown[] }>('app.bsky.actor.getPreferences'),
  ]);
  if (newStatus.repoCommit !== head.cid) throw new RepoMoved(`the old repository changed (now rev ${head.rev})`);

  const stillMissing: MissingBlob[] = [];
  for (let page = firstMissing; ; page = await missingBlobsPage(neu, page.cursor)) {
    for (const { cid, recordUri } of page.blobs) {
      const known = state.failedBlobs.get(cid);
      const entry: MissingBlob = { cid, reason: known?.reason ?? 'not copied (unknown reason)' };
      if (recordUri ?? known?.record) entry.record = recordUri ?? known?.record;
      stillMissing.push(entry);
      state.failedBlobs.set(cid, entry);
    }
    if (page.blobs.length === 0 || !page.cursor) break;
  }
  if (stillMissing.length > 0) {
    const list = stillMissing.map((b) => `${b.cid}${b.record ? ` (${b.record})` : ''}: ${b.reason}`).join('; ');
    throw new MigrationError('MissingBlobs', `${stillMissing.length} blob(s) are missing on the new server: ${list}`, {
      kind: 'run-again',
      reason: 'missing-blobs',
    });
  }
  if (newStatus.indexedRecords !== oldStatus.indexedRecords) {
    throw new MigrationError(
      'RecordCountMismatch',
      `the new server holds ${newStatus.indexedRecords} records, the old one ${oldStatus.indexedRecords}`,
      { kind: 'run-again', reason: 'mismatch' },
    );
  }
  if (canonicalJson(oldPrefs.preferences) !== canonicalJson(newPrefs.preferences)) {
    throw new RepoMoved('the preferences changed while they were copied');
  }
  return `same commit (rev ${head.rev}), ${newStatus.indexedRecords} records, all ${newStatus.expectedBlobs} blobs, equal preferences`;
}

/** JSON with every object's keys sorted, so equal values compare equal as text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}
