/**
 * What `portage doctor` looks at, read without changing anything: the DID document and PLC log,
 * and on each server involved in a move the public repo status and, signed in, the account's own
 * status (`checkAccountStatus`) and the blobs it still lacks (`listMissingBlobs`). Browser-safe.
 */
import { getHandle, getPdsEndpoint, normalizeServiceUrl, sameServiceUrl } from '@portage/atproto/identity/did-document';
import { PlcClient } from '@portage/atproto/plc/client';
import { XrpcClient, XrpcClientError } from '@portage/atproto/xrpc/client';
import { MigrationError } from '../errors.ts';
import { describeError } from '../retry.ts';
import { didFor, documentFor } from '../identity/resolve-did.ts';
import { PdsSession } from '../session.ts';
import type { AccountStatus } from '@portage/atproto/xrpc/account-status';

export type { AccountStatus };

/** One server's view of the account. */
export interface ServerView {
  url: string;
  /** 'current': the server the DID document names; 'other': the other end of a move. */
  role: 'current' | 'other';
  /** Why the server could not be asked at all (down, not a PDS), if it could not. */
  unreachable?: string;
  /** The account exists there (sync.getRepoStatus found it). */
  exists: boolean;
  /** The public status: active, or why not (deactivated, takendown, suspended...). */
  active?: boolean;
  publicStatus?: string;
  /** Why signing in failed, when it did (then `status` and `missingBlobs` are unknown). */
  signInError?: string;
  status?: AccountStatus;
  missingBlobs?: string[];
  session?: PdsSession;
}

export interface AccountInspection {
  did: string;
  handle?: string;
  /** The PDS the DID document names now. */
  pds: string;
  /** The PDS the DID named before its last change of PDS, from the PLC audit log. */
  previousPds?: string;
  /** When the PDS in the DID document last changed (the PLC operation's time). */
  pdsChangedAt?: string;
  /** Every PDS the DID named before the current one: a server among them is the old end of a move. */
  earlierPdses: string[];
  current: ServerView;
  other?: ServerView;
}

export interface InspectOptions {
  from: string;
  /** The other server of the move (the new one when the DID was not updated yet). */
  to?: string;
  plcUrl?: string;
}

export interface InspectEnvironment {
  fetch?: typeof fetch;
  resolveTxt?: (name: string) => Promise<string[]>;
  /** The account password on a server, or undefined to look only at what is public there. */
  password(server: string, role: 'current' | 'other'): Promise<string | undefined>;
}

export async function inspectAccount(opts: InspectOptions, env: InspectEnvironment): Promise<AccountInspection> {
  const fetchImpl = env.fetch ?? globalThis.fetch.bind(globalThis);
  const plcUrl = opts.plcUrl ?? 'https://plc.directory';
  const did = await didFor(opts.from, fetchImpl, env.resolveTxt);
  const doc = await documentFor(did, plcUrl, fetchImpl);
  const pds = normalizeServiceUrl(getPdsEndpoint(doc) ?? '');
  if (!pds) {
    throw new MigrationError(
      'NoPds',
      `the DID document of ${did} names no PDS`,
      'The account cannot be repaired here.',
    );
  }
  const history = did.startsWith('did:plc:') ? await pdsHistory(new PlcClient(plcUrl, fetchImpl), did) : undefined;
  const to = opts.to ? normalizeServiceUrl(opts.to) : undefined;
  const otherUrl = to && !sameServiceUrl(to, pds) ? to : history?.previousPds;
  const current = await inspectServer(pds, 'current', did, fetchImpl, env);
  const other =
    otherUrl && !sameServiceUrl(otherUrl, pds)
      ? await inspectServer(otherUrl, 'other', did, fetchImpl, env)
      : undefined;
  const handle = getHandle(doc);
  return {
    did,
    ...(handle ? { handle } : {}),
    pds,
    ...(history?.previousPds ? { previousPds: history.previousPds } : {}),
    ...(history?.changedAt ? { pdsChangedAt: history.changedAt } : {}),
    earlierPdses: history?.earlierPdses ?? [],
    current,
    ...(other ? { other } : {}),
  };
}

/** The PDS before the last change of PDS, and when that change happened. */
async function pdsHistory(
  plc: PlcClient,
  did: string,
): Promise<{ previousPds?: string; changedAt?: string; earlierPdses: string[] } | undefined> {
  const log = await plc.getAuditLog(did).catch(() => undefined);
  if (!log) return undefined;
  const endpoints = log
    .filter((e) => !e.nullified && 'services' in e.operation)
    .map((e) => ({
      pds: normalizeServiceUrl(
        (e.operation as { services?: Record<string, { endpoint?: string }> }).services?.atproto_pds?.endpoint ?? '',
      ),
      at: e.createdAt,
    }));
  const current = endpoints.at(-1)?.pds;
  const earlierPdses = [
    ...new Set(endpoints.map((e) => e.pds).filter((pds): pds is string => !!pds && !sameServiceUrl(pds, current))),
  ];
  for (let i = endpoints.length - 1; i > 0; i--) {
    const now = endpoints[i]!;
    const before = endpoints[i - 1]!;
    if (now.pds && before.pds && !sameServiceUrl(now.pds, before.pds)) {
      return { previousPds: before.pds, changedAt: now.at, earlierPdses };
    }
  }
  return { earlierPdses };
}

async function inspectServer(
  url: string,
  role: 'current' | 'other',
  did: string,
  fetchImpl: typeof fetch,
  env: InspectEnvironment,
): Promise<ServerView> {
  const view: ServerView = { url, role, exists: false };
  const anonymous = new XrpcClient({ service: url, fetch: fetchImpl });
  try {
    const repo = await anonymous.query<{ active: boolean; status?: string }>(
      'com.atproto.sync.getRepoStatus',
      { did },
      { timeoutMs: 30_000 },
    );
    view.exists = true;
    view.active = repo.active;
    if (repo.status) view.publicStatus = repo.status;
  } catch (err) {
    if (err instanceof XrpcClientError && err.error === 'RepoNotFound') return view;
    view.unreachable = describeError(err);
    return view;
  }
  const password = await env.password(url, role);
  if (password === undefined) return view;
  const session = new PdsSession(url, did, fetchImpl);
  try {
    await session.login(password);
  } catch (err) {
    view.signInError = describeError(err);
    return view;
  }
  view.session = session;
  view.status = await session.query<AccountStatus>('com.atproto.server.checkAccountStatus');
  view.missingBlobs = await listMissingBlobs(session);
  return view;
}

/** Every CID listMissingBlobs names, all pages. */
export async function listMissingBlobs(session: PdsSession): Promise<string[]> {
  const missing: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await session.query<{ blobs: { cid: string }[]; cursor?: string }>(
      'com.atproto.repo.listMissingBlobs',
      { limit: 1000, ...(cursor ? { cursor } : {}) },
    );
    for (const b of page.blobs) missing.push(b.cid);
    cursor = page.blobs.length > 0 ? page.cursor : undefined;
  } while (cursor);
  return missing;
}
