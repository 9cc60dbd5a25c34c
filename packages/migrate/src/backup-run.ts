/**
 * `portage backup`: the account's repo CAR, blobs and preferences into a BackupSink, incremental
 * on later runs: only the repository's changes since the stored revision are fetched
 * (`getRepo` with `since`, merged by backup-merge.ts), and only the blobs added since the last
 * complete round are listed (`listBlobs` with `since`) and downloaded (by CID, so a stored blob
 * never needs re-checking against the server). Reads only public sync endpoints, plus getPreferences when a password is given.
 * Browser-safe like the engine.
 */
import {
  getAtprotoSigningKey,
  getHandle,
  getPdsEndpoint,
  normalizeServiceUrl,
} from '@portage/atproto/identity/did-document';
import { HandleResolver } from '@portage/atproto/identity/handle-resolver';
import { XrpcClient, XrpcClientError } from '@portage/atproto/xrpc/client';
import type { BackupSink } from './backup.ts';
import { mergeRepoDiff, readRepoHead } from './backup-merge.ts';
import { AdaptivePool } from './blobs.ts';
import { checkedServiceUrl, toMigrationError } from './failure.ts';
import { formatBytes } from './progress.ts';
import { UNCOMPRESSED_REPO } from './steps/run.ts';
import { MigrationError } from './errors.ts';
import { type EventSink, STEP_TITLES, type StepName } from './events.ts';
import { countingStream, ProgressTracker } from './progress.ts';
import { describeError, withRetry } from './retry.ts';
import { PdsSession } from './session.ts';
import { documentFor } from './identity/resolve-did.ts';

export interface BackupOptions {
  from: string;
  /** The account's PDS, skipping its lookup. */
  pds?: string;
  plcUrl?: string;
  concurrency?: number;
}

export interface BackupEnvironment {
  openBackup(did: string): Promise<BackupSink>;
  onEvent: EventSink;
  fetch?: typeof fetch;
  resolveTxt?: (name: string) => Promise<string[]>;
  /** The account password, to include preferences (they are private); undefined skips them. */
  password?: string;
}

export interface BackupResult {
  status: 'done' | 'failed';
  did?: string;
  message: string;
  repoUpdated?: boolean;
  blobsFetched?: number;
}

export async function backupAccount(opts: BackupOptions, env: BackupEnvironment): Promise<BackupResult> {
  const fetchImpl = env.fetch ?? globalThis.fetch.bind(globalThis);
  const emit = env.onEvent;
  let current: StepName = 'resolve';
  const step = async <T>(name: StepName, fn: () => Promise<{ summary: string; value: T; skipped?: boolean }>) => {
    current = name;
    emit({ type: 'step-started', step: name, title: STEP_TITLES[name] });
    const out = await fn();
    emit({ type: 'step-done', step: name, summary: out.summary, ...(out.skipped ? { skipped: true } : {}) });
    return out.value;
  };
  let did: string | undefined;
  try {
    const { pds, signingKey, ...who } = await step('resolve', async () => {
      const value = await resolveAccount(opts, fetchImpl, env.resolveTxt);
      return { summary: `${value.did} on ${value.pds}`, value };
    });
    did = who.did;
    const account = did;
    const backup = await env.openBackup(account);
    const sync = new XrpcClient({ service: pds, fetch: fetchImpl });

    const head = await withRetry(() =>
      sync.query<{ cid: string; rev: string }>('com.atproto.sync.getLatestCommit', { did: account }),
    );

    // Blobs before the repository: a round stopped halfway leaves at most blobs that no stored
    // record needs yet, never a stored record whose blob is missing.
    const blobsFetched = await step('blobs', async () => {
      const since = await backup.blobsCompleteAt?.();
      if (since === head.rev) return { summary: `no new blobs (rev ${head.rev})`, value: 0, skipped: true };
      const wanted: string[] = [];
      let cursor: string | undefined;
      let total = 0;
      do {
        const page = await withRetry(() =>
          sync.query<{ cids: string[]; cursor?: string }>('com.atproto.sync.listBlobs', {
            did: account,
            limit: 1000,
            since,
            cursor,
          }),
        );
        for (const cid of page.cids) {
          total++;
          if (!(await backup.hasBlob(cid))) wanted.push(cid);
        }
        cursor = page.cids.length > 0 ? page.cursor : undefined;
      } while (cursor);
      const progress = new ProgressTracker('blobs', 'blobs', emit, wanted.length);
      const pool = new AdaptivePool(opts.concurrency ?? 8);
      const failed: string[] = [];
      for (const cid of wanted) {
        await pool.add(async () => {
          try {
            await withRetry(async () => {
              const res = await sync.request('com.atproto.sync.getBlob', {
                method: 'GET',
                params: { did: account, cid },
              });
              await backup.writeBlob(
                cid,
                res.body!.pipeThrough(countingStream((n) => progress.addBytes(n))),
                res.headers.get('content-type') || undefined,
              );
            });
            pool.succeeded();
            progress.addDone();
          } catch (err) {
            failed.push(cid);
            emit({ type: 'warning', step: 'blobs', message: `blob ${cid} could not be saved: ${describeError(err)}` });
          }
        });
      }
      await pool.drain();
      progress.flush();
      if (failed.length > 0) {
        throw new MigrationError('BlobsNotSaved', `${failed.length} blob(s) could not be saved: ${failed.join(', ')}`, {
          kind: 'run-again',
          reason: 'failed',
        });
      }
      await backup.markBlobsComplete?.(head.rev);
      return {
        summary: `${wanted.length} new of ${total} blobs${since ? ` added since rev ${since}` : ''} (${formatBytes(progress.figures().bytes)})`,
        value: wanted.length,
      };
    });

    const repoUpdated = await step('repo', async () => {
      const stored = await storedHead(backup, account);
      if ((stored?.commit ?? (await backup.repoCommit())) === head.cid) {
        return { summary: `unchanged (rev ${head.rev})`, value: false, skipped: true };
      }
      const progress = new ProgressTracker('repo', 'bytes', emit);
      if (stored) {
        try {
          // The changes are small next to the repository: held in memory, so a failed merge is
          // told apart from a failed download (only the download is worth retrying).
          const diff = await withRetry(async () => {
            const res = await sync.request('com.atproto.sync.getRepo', {
              method: 'GET',
              params: { did: account, since: stored.rev },
              headers: UNCOMPRESSED_REPO,
            });
            return new Uint8Array(await res.arrayBuffer());
          });
          progress.addBytes(diff.byteLength);
          const merged = await mergeRepoDiff(await readStored(backup), diff, account);
          await backup.writeRepo(merged.car, merged.commit);
          progress.flush();
          return {
            summary: `saved the changes since rev ${stored.rev}: ${formatBytes(progress.figures().bytes)} (rev ${merged.rev})`,
            value: true,
          };
        } catch (err) {
          if (err instanceof XrpcClientError && (err.status === 0 || err.status >= 500 || err.status === 429))
            throw err;
          emit({
            type: 'warning',
            step: 'repo',
            message: `the changes since rev ${stored.rev} did not complete the stored repository (${describeError(err)}); fetching it whole`,
          });
        }
      }
      await withRetry(async () => {
        const res = await sync.request('com.atproto.sync.getRepo', {
          method: 'GET',
          params: { did: account },
          headers: UNCOMPRESSED_REPO,
        });
        await backup.writeRepo(res.body!.pipeThrough(countingStream((n) => progress.addBytes(n))), head.cid);
      });
      progress.flush();
      return { summary: `saved ${formatBytes(progress.figures().bytes)} (rev ${head.rev})`, value: true };
    });
    // The key the stored commit is signed with, so the backup can check its signature offline.
    if (signingKey) await backup.recordSigningKey?.(signingKey);

    await step('preferences', async () => {
      if (env.password === undefined) {
        emit({
          type: 'warning',
          step: 'preferences',
          message: 'no password given, so the (private) preferences are not saved',
        });
        return { summary: 'skipped', value: undefined, skipped: true };
      }
      const session = new PdsSession(pds, account, fetchImpl);
      await session.login(env.password);
      const { preferences } = await session.query<{ preferences: unknown[] }>('app.bsky.actor.getPreferences');
      await backup.writePreferences(preferences);
      return { summary: `saved ${preferences.length} preferences`, value: undefined };
    });

    const message = `backup of ${account} is current${repoUpdated ? ' (repo updated)' : ''}; ${blobsFetched} new blob(s)`;
    emit({ type: 'finished', status: 'done', message });
    return { status: 'done', did: account, message, repoUpdated, blobsFetched };
  } catch (err) {
    const failure = toMigrationError(err, current);
    emit({
      type: 'step-failed',
      step: current,
      message: failure.message,
      next: failure.next,
      nextStep: failure.nextStep,
      code: failure.code,
    });
    const message = `${failure.message}. ${failure.next}`;
    emit({ type: 'finished', status: 'failed', message });
    return { status: 'failed', ...(did ? { did } : {}), message };
  }
}

/** The commit the stored repository ends at, when one is stored and readable. */
async function storedHead(backup: BackupSink, did: string): Promise<{ commit: string; rev: string } | undefined> {
  const car = await backup.readRepo?.();
  if (!car) return undefined;
  try {
    const head = await readRepoHead(car instanceof Blob ? (car.stream() as ReadableStream<Uint8Array>) : car);
    return head.did === did ? head : undefined;
  } catch {
    return undefined; // a damaged file is replaced by a whole export
  }
}

async function readStored(backup: BackupSink): Promise<ReadableStream<Uint8Array>> {
  const car = await backup.readRepo!();
  if (!car) throw new Error('the stored repository went away');
  return car instanceof Blob ? (car.stream() as ReadableStream<Uint8Array>) : car;
}

/** Handle or DID -> DID, checked DID document, and PDS URL. */
async function resolveAccount(
  opts: BackupOptions,
  fetchImpl: typeof fetch,
  resolveTxt?: (name: string) => Promise<string[]>,
): Promise<{ did: string; pds: string; signingKey: string | undefined }> {
  const givenPds = opts.pds === undefined ? undefined : checkedServiceUrl(opts.pds, 'fromPds');
  const plcUrl = checkedServiceUrl(opts.plcUrl ?? 'https://plc.directory', 'plcUrl');
  const from = opts.from.trim().replace(/^@/, '');
  let did = from;
  let handle: string | undefined;
  if (!from.startsWith('did:')) {
    handle = from.toLowerCase();
    let found: string | undefined;
    if (givenPds) {
      found = await new XrpcClient({ service: givenPds, fetch: fetchImpl })
        .query<{ did?: string }>('com.atproto.identity.resolveHandle', { handle })
        .then((r) => r?.did)
        .catch(() => undefined);
    }
    if (!found && resolveTxt) found = await new HandleResolver({ resolveTxt, fetch: fetchImpl }).resolve(handle);
    if (!found) {
      throw new MigrationError('UnknownHandle', `no account found for the handle ${handle}`, {
        kind: 'need-input',
        field: 'from',
        reason: 'not-found',
        nothingChanged: true,
      });
    }
    did = found;
  }
  const doc = await documentFor(did, plcUrl, fetchImpl);
  if (handle && getHandle(doc)?.toLowerCase() !== handle) {
    throw new MigrationError('HandleMismatch', `the DID document of ${did} does not name the handle ${handle}`, {
      kind: 'need-input',
      field: 'from',
      reason: 'mismatch',
      nothingChanged: true,
    });
  }
  // getPdsEndpoint gives only an endpoint that normalizes (like the given old server, checked already).
  const pds = givenPds ?? normalizeServiceUrl(getPdsEndpoint(doc) ?? '');
  if (!pds)
    throw new MigrationError('NoPds', `the DID document of ${did} names no PDS`, {
      kind: 'need-input',
      field: 'fromPds',
      reason: 'missing',
      nothingChanged: true,
    });
  return { did, pds, signingKey: getAtprotoSigningKey(doc) };
}
