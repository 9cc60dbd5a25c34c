/**
 * The doctor's safe repairs, in order, each only when the diagnosis asked for it
 * and nothing before it failed. Nothing here changes the DID document or deletes anything; the
 * account the DID points to is only activated once it holds its records and every blob, and the
 * old one is only deactivated once the one the DID points to is active.
 */
import { XrpcClient } from '@portage/atproto/xrpc/client';
import { UNCOMPRESSED_REPO } from '../engine.ts';
import { MigrationError } from '../errors.ts';
import type { NextStep } from '../next-steps.ts';
import { describeError, withRetry } from '../retry.ts';
import type { PdsSession } from '../session.ts';
import type { Repair } from './diagnose.ts';
import { type AccountInspection, type AccountStatus, listMissingBlobs } from './inspect.ts';

/** Where lost data may be read back from: a local backup (Node: DirectoryBackup). */
export interface RepairBackup {
  readRepo?(): Promise<Blob | ReadableStream<Uint8Array> | undefined>;
  readBlob(cid: string): Promise<{ read(): Promise<Uint8Array | Blob | undefined> } | undefined>;
  blobContentType?(cid: string): Promise<string | undefined>;
}

export interface RepairEnvironment {
  fetch?: typeof fetch;
  backup?: RepairBackup;
  /** One sentence per thing done, as it is done. */
  onProgress(message: string): void;
}

export interface RepairOutcome {
  done: string[];
  /** Why the repairs stopped early, if they did. */
  stopped?: string;
  /** What to do about it, when the stop names one (no source for a lost repository). */
  next?: NextStep;
}

export async function repairAccount(
  ins: AccountInspection,
  repairs: readonly Repair[],
  env: RepairEnvironment,
): Promise<RepairOutcome> {
  const done: string[] = [];
  const say = (message: string) => {
    done.push(message);
    env.onProgress(message);
  };
  const current = ins.current.session;
  if (!current) return { done, stopped: `not signed in on ${ins.current.url}` };
  const other = ins.other?.session;
  const fetchImpl = env.fetch ?? globalThis.fetch.bind(globalThis);
  try {
    if (repairs.includes('import-repo')) {
      const car = await repoSource(ins, env.backup, fetchImpl);
      await current.request('com.atproto.repo.importRepo', {
        method: 'POST',
        body: car.body,
        encoding: 'application/vnd.ipld.car',
      });
      say(`imported the repository into ${ins.current.url} from ${car.from}`);
    }
    const missing = await listMissingBlobs(current);
    if (repairs.includes('upload-blobs') || repairs.includes('import-repo') || missing.length > 0) {
      let uploaded = 0;
      const lost: string[] = [];
      for (const cid of missing) {
        const blob = await blobSource(cid, ins, env.backup, other, fetchImpl);
        if (!blob) {
          lost.push(cid);
          continue;
        }
        const res = await withRetry(() =>
          current.request('com.atproto.repo.uploadBlob', { method: 'POST', body: blob.bytes, encoding: blob.type }),
        );
        const answer = (await res.json()) as { blob?: { ref?: { $link?: string } } };
        if (answer.blob?.ref?.$link !== cid) {
          lost.push(cid);
          continue;
        }
        uploaded++;
      }
      if (missing.length > 0) say(`uploaded ${uploaded} missing blob(s) to ${ins.current.url}`);
      if (lost.length > 0) {
        return {
          done,
          stopped: `${lost.length} blob(s) are in neither the backup nor on ${ins.other?.url ?? 'another server'}: ${lost.join(', ')}; the account was left as it was`,
        };
      }
    }
    let status = await current.query<AccountStatus>('com.atproto.server.checkAccountStatus');
    if (repairs.includes('activate-current') && !status.activated) {
      if (status.indexedRecords === 0 && (ins.other?.status?.indexedRecords ?? 0) > 0) {
        return { done, stopped: `the account on ${ins.current.url} still holds no records, so it was not activated` };
      }
      await current.procedure('com.atproto.server.activateAccount');
      status = await current.query<AccountStatus>('com.atproto.server.checkAccountStatus');
      say(`activated the account on ${ins.current.url}`);
    }
    if (repairs.includes('deactivate-other') && other) {
      if (!status.activated) {
        return { done, stopped: `the account on ${ins.current.url} is not active, so the old one was left active` };
      }
      await other.procedure('com.atproto.server.deactivateAccount', {});
      say(`deactivated the old account on ${ins.other!.url}`);
    }
    return { done };
  } catch (err) {
    return { done, stopped: describeError(err), ...(err instanceof MigrationError ? { next: err.nextStep } : {}) };
  }
}

/** The repository to import: the backup's CAR, else the other server's export. */
async function repoSource(
  ins: AccountInspection,
  backup: RepairBackup | undefined,
  fetchImpl: typeof fetch,
): Promise<{ body: Blob | ReadableStream<Uint8Array>; from: string }> {
  const stored = await backup?.readRepo?.();
  if (stored) return { body: stored, from: 'the backup' };
  const other = ins.other;
  if (!other?.exists) {
    throw new MigrationError(
      'NoRepoSource',
      'there is no repository to import: no backup was given and no other server holds the account',
      { kind: 'need-input', field: 'backup', reason: 'missing' },
    );
  }
  const res = await (other.session?.request.bind(other.session) ?? anonymousRequest(other.url, fetchImpl))(
    'com.atproto.sync.getRepo',
    { method: 'GET', params: { did: ins.did }, headers: UNCOMPRESSED_REPO },
  );
  // importRepo needs the whole body with a length on some servers; accounts repaired here are
  // read once, so holding the CAR is the simple way.
  return { body: new Blob([await res.arrayBuffer()]), from: other.url };
}

/** A blob's bytes and type: from the backup if it holds it, else from the other server. */
async function blobSource(
  cid: string,
  ins: AccountInspection,
  backup: RepairBackup | undefined,
  other: PdsSession | undefined,
  fetchImpl: typeof fetch,
): Promise<{ bytes: Uint8Array | Blob; type: string } | undefined> {
  const stored = await backup?.readBlob(cid);
  const bytes = await stored?.read();
  if (bytes) {
    return { bytes, type: (await backup?.blobContentType?.(cid)) ?? 'application/octet-stream' };
  }
  if (!ins.other?.exists) return undefined;
  const request = other?.request.bind(other) ?? anonymousRequest(ins.other.url, fetchImpl);
  try {
    const res = await withRetry(() =>
      request('com.atproto.sync.getBlob', { method: 'GET', params: { did: ins.did, cid } }),
    );
    return {
      bytes: new Uint8Array(await res.arrayBuffer()),
      type: res.headers.get('content-type') || 'application/octet-stream',
    };
  } catch {
    return undefined;
  }
}

function anonymousRequest(service: string, fetchImpl: typeof fetch): PdsSession['request'] {
  const client = new XrpcClient({ service, fetch: fetchImpl });
  return (nsid, req) => client.request(nsid, req);
}
