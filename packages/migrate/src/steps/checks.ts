/**
 * Step "checks": what would make the move fail half-way, asked before it changes anything. The
 * old account's status (a deactivated account still moves: its owner can read it; a suspended
 * or taken-down one cannot), both servers' clocks (the service token that creates the account is
 * made by the old server's clock and checked by the new one's, and it lives minutes), the new
 * handle and email (free and well formed on the new server, asked without side effects), and
 * the largest blob against the new server's upload limit when it states one. Each refusal is a
 * MigrationError with its next step; nothing is created or changed here.
 */
import { getHandle } from '@portage/atproto/identity/did-document';
import { findHandleProblem } from '@portage/atproto/syntax/handle';
import { AdaptivePool } from '../blobs.ts';
import { MigrationError } from '../errors.ts';
import { formatBytes } from '../progress.ts';
import { describeError } from '../retry.ts';
import type { AccountStatus } from '@portage/atproto/xrpc/account-status';
import { type RunContext, type RunState, type StepOutcome } from './run.ts';

/** Servers whose clocks differ by more than this would see the account-creation token expire (it lives 5 minutes). */
export const MAX_SERVER_SKEW_MS = 4 * 60_000;
/** This device's clock off by more than this gets a warning: times it shows (a resume time) would be off. */
const LOCAL_SKEW_WARNING_MS = 60_000;

export async function checkBeforeMoving(ctx: RunContext, state: RunState): Promise<StepOutcome> {
  if (state.identityMoved)
    return { summary: 'nothing to check: the DID already points to the new server', skipped: true };
  const said: string[] = [];
  said.push(await checkOldAccount(ctx, state));
  const clocks = await checkClocks(ctx, state);
  if (clocks) said.push(clocks);
  // An account an earlier run made on the new server has its handle and blobs there already.
  const alreadyThere = (await state.newLogin) === undefined;
  if (!alreadyThere) {
    said.push(await checkHandleAndEmail(ctx, state));
    const blobs = await checkBlobSizes(ctx, state);
    if (blobs) said.push(blobs);
  }
  return said.join('; ');
}

async function checkOldAccount(ctx: RunContext, state: RunState): Promise<string> {
  const old = state.old!;
  const info = old.info!;
  const status = await old.query<Partial<AccountStatus>>('com.atproto.server.checkAccountStatus');
  if (info.status === 'takendown' || info.status === 'suspended') {
    throw new MigrationError(
      'OldAccountUnavailable',
      `the old server has ${info.status === 'takendown' ? 'taken down' : 'suspended'} the account`,
      { kind: 'old-account-unavailable', status: info.status, nothingChanged: true },
    );
  }
  if (info.active === false || status.activated === false) {
    ctx.emit({
      type: 'warning',
      step: 'checks',
      message: `the old account is ${info.status ?? 'deactivated'}: its data still moves, and it stays deactivated`,
    });
    return `the old account is ${info.status ?? 'deactivated'} (it moves all the same)`;
  }
  return 'the old account is active';
}

/**
 * Each server's clock against this device's, from the Date header of a describeServer answer
 * (to the second; a browser may not see the header, and then the check is skipped). The old
 * server's offset is kept: the account-creation token's expiry is set by that server's clock.
 */
async function checkClocks(ctx: RunContext, state: RunState): Promise<string | undefined> {
  const [oldOffset, newOffset] = await Promise.all([clockOffset(ctx, state.old!.service), clockOffset(ctx, ctx.to)]);
  if (oldOffset !== undefined) state.oldClockOffsetMs = oldOffset;
  if (oldOffset === undefined || newOffset === undefined) return undefined;
  if (Math.abs(newOffset - oldOffset) > MAX_SERVER_SKEW_MS) {
    // The one farther from this device's clock is the one that is off (the best guess there is).
    const clock = Math.abs(newOffset) > Math.abs(oldOffset) ? 'new-server' : 'old-server';
    const skewSeconds = Math.round((clock === 'new-server' ? newOffset : oldOffset) / 1000);
    throw new MigrationError(
      'ClockSkew',
      `the clocks of the two servers differ by ${Math.round(Math.abs(newOffset - oldOffset) / 1000)} seconds; the token that creates the account would expire before the new server sees it`,
      { kind: 'fix-clock', clock, skewSeconds, nothingChanged: true },
    );
  }
  const local = Math.max(Math.abs(oldOffset), Math.abs(newOffset));
  if (local > LOCAL_SKEW_WARNING_MS) {
    ctx.emit({
      type: 'warning',
      step: 'checks',
      message: `this device's clock is ${Math.round(local / 1000)} seconds off the servers'; the move goes by the servers' clocks`,
    });
  }
  return `the clocks agree within ${Math.round(Math.abs(newOffset - oldOffset) / 1000)} seconds`;
}

async function clockOffset(ctx: RunContext, service: string): Promise<number | undefined> {
  try {
    const sent = Date.now();
    const res = await ctx.fetch(`${service}/xrpc/com.atproto.server.describeServer`, { signal: ctx.stopping });
    const received = Date.now();
    await res.body?.cancel();
    const date = Date.parse(res.headers.get('date') ?? '');
    if (Number.isNaN(date)) return undefined;
    // The header is truncated to the second: its middle is the best estimate.
    return date + 500 - (sent + received) / 2;
  } catch {
    return undefined;
  }
}

/**
 * The handle: well formed, within the new server's domains or the account's own, and free there
 * (resolveHandle on the new server, which both the reference and Portage answer without side
 * effects). The email: well formed; no server offers a side-effect-free way to ask whether an
 * address is taken, so createAccount's refusal says that one.
 */
async function checkHandleAndEmail(ctx: RunContext, state: RunState): Promise<string> {
  const neu = state.neu!;
  const currentHandle = getHandle(state.doc!)?.toLowerCase();
  const handle = (ctx.options.newHandle ?? currentHandle ?? '').toLowerCase();
  if (!handle) {
    throw new MigrationError('HandleRequired', 'the account has no handle to reuse', {
      kind: 'need-input',
      field: 'newHandle',
      reason: 'missing',
      nothingChanged: true,
    });
  }
  const problem = findHandleProblem(handle);
  if (problem) {
    throw new MigrationError('InvalidHandle', `"${handle}" is not a valid handle: ${problem}`, {
      kind: 'need-input',
      field: 'newHandle',
      reason: 'invalid',
      nothingChanged: true,
    });
  }
  const domains = Array.isArray(state.userDomains) ? state.userDomains : [];
  const onServerDomain = domains.some((d) => handle.endsWith(d.toLowerCase()));
  if (domains.length > 0 && !onServerDomain && handle !== currentHandle) {
    throw new MigrationError(
      'InvalidHandle',
      `${ctx.to} gives handles ending in ${domains.join(', ')}; ${handle} is neither one of those nor the account's own`,
      { kind: 'need-input', field: 'newHandle', reason: 'invalid', nothingChanged: true },
    );
  }
  if (state.inviteRequired && !ctx.options.inviteCode) {
    throw new MigrationError('InviteCodeRequired', `${ctx.to} requires an invite code to create an account`, {
      kind: 'need-input',
      field: 'inviteCode',
      reason: 'missing',
      nothingChanged: true,
    });
  }
  const email = ctx.options.newEmail ?? state.old?.info?.email;
  if (!email) {
    throw new MigrationError('EmailRequired', 'the old server did not share the account email', {
      kind: 'need-input',
      field: 'newEmail',
      reason: 'missing',
      nothingChanged: true,
    });
  }
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
    throw new MigrationError('InvalidEmail', `"${email}" is not an email address`, {
      kind: 'need-input',
      field: 'newEmail',
      reason: 'invalid',
      nothingChanged: true,
    });
  }
  // Who holds the handle on the new server already? Ourselves (from an earlier attempt) is for
  // create-account to sort out; someone else means the handle must change.
  const holder = await neu.anonymous
    .query<{ did?: string }>('com.atproto.identity.resolveHandle', { handle }, { timeoutMs: 30_000 })
    .then((r) => r?.did)
    .catch(() => undefined);
  if (holder && holder !== state.did) {
    throw new MigrationError('HandleTaken', `the handle ${handle} belongs to another account on ${ctx.to}`, {
      kind: 'need-input',
      field: 'newHandle',
      reason: 'taken',
      nothingChanged: true,
    });
  }
  state.newAccount = { handle, email, holder };
  return `the handle ${handle} is free`;
}

/** Blob sizes the old server reported, for the check against the new server's upload limit. */
export interface BlobSizes {
  limit: number;
  counted: number;
  largest: number;
  tooLarge: { cid: string; bytes: number }[];
  /** Set instead of measuring: the old server's own upload limit, no larger than the new one's. */
  withinOldLimit?: number;
}

/** The upload limit the old server states in describeServer (Portage does), if any. */
async function oldServerLimit(ctx: RunContext, service: string): Promise<number | undefined> {
  try {
    const res = await ctx.fetch(`${service}/xrpc/com.atproto.server.describeServer`, { signal: ctx.stopping });
    const desc = (await res.json()) as { blobUploadLimit?: unknown };
    return typeof desc.blobUploadLimit === 'number' && desc.blobUploadLimit > 0 ? desc.blobUploadLimit : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts measuring the old server's blobs (sizes from the backup when it holds them, else a HEAD
 * `getBlob`) as soon as the account is resolved, when the new server states an upload limit: it
 * runs while the old server checks the password, which is the slow part of signing in. getBlob
 * and listBlobs are public for an active account; a deactivated one's are measured again in the
 * checks step, signed in. Resolves to undefined without a limit, or when measuring failed.
 */
export function startMeasuringBlobs(ctx: RunContext, state: RunState): Promise<BlobSizes | undefined> {
  return (async () => {
    const desc = await state.description!;
    const limit = desc.blobUploadLimit;
    if (typeof limit !== 'number' || !(limit > 0)) return undefined;
    // The old server took every blob it holds: when it states a limit no larger, none can be too large.
    const oldLimit = await oldServerLimit(ctx, state.old!.service);
    if (oldLimit !== undefined && oldLimit <= limit)
      return { limit, counted: 0, largest: 0, tooLarge: [], withinOldLimit: oldLimit };
    return measureBlobs(ctx, state, limit);
  })().catch(() => undefined);
}

async function measureBlobs(ctx: RunContext, state: RunState, limit: number): Promise<BlobSizes> {
  const old = state.old!;
  const sizes: BlobSizes = { limit, counted: 0, largest: 0, tooLarge: [] };
  const pool = new AdaptivePool(ctx.concurrency);
  const sizeOf = async (cid: string): Promise<number | undefined> => {
    const stored = await state.backup?.readBlob(cid).catch(() => undefined);
    if (stored) return stored.size;
    const res = await old.request('com.atproto.sync.getBlob', { method: 'HEAD', params: { did: state.did, cid } });
    await res.body?.cancel();
    const length = Number(res.headers.get('content-length'));
    return Number.isFinite(length) && length > 0 ? length : undefined;
  };
  let cursor: string | undefined;
  do {
    const page = await old.query<{ cids: string[]; cursor?: string }>(
      'com.atproto.sync.listBlobs',
      { did: state.did, limit: 1000, cursor },
      { attempts: 2 },
    );
    for (const cid of page.cids) {
      // A run that ended (a wrong password, say) waits for this: it stops at once.
      if (ctx.stopping.aborted) break;
      await pool.add(async () => {
        if (ctx.stopping.aborted) return;
        const bytes = await sizeOf(cid).catch(() => undefined);
        if (bytes === undefined) return;
        sizes.counted++;
        sizes.largest = Math.max(sizes.largest, bytes);
        if (bytes > limit) sizes.tooLarge.push({ cid, bytes });
      });
    }
    cursor = page.cids.length > 0 ? page.cursor : undefined;
  } while (cursor && !ctx.stopping.aborted);
  await pool.drain();
  return sizes;
}

/**
 * The largest blob against the new server's upload limit, when its describeServer states one
 * (Portage does; the reference does not, and then a blob too large is reported by the blob step).
 */
async function checkBlobSizes(ctx: RunContext, state: RunState): Promise<string | undefined> {
  const limit = state.blobUploadLimit;
  if (limit === undefined) return undefined;
  let sizes = await state.blobSizes;
  if (sizes?.withinOldLimit !== undefined) {
    return `every blob is within the old server's ${formatBytes(sizes.withinOldLimit)}, which the new server takes`;
  }
  if (!sizes || sizes.counted === 0) {
    // Measured without a session and refused (a deactivated account), or not started: now, signed in.
    sizes = await measureBlobs(ctx, state, limit).catch((err: unknown) => {
      ctx.emit({
        type: 'warning',
        step: 'checks',
        message: `the blob sizes could not be checked: ${describeError(err)}`,
      });
      return undefined;
    });
    if (!sizes) return undefined;
  }
  const { tooLarge, counted, largest } = sizes;
  if (tooLarge.length > 0) {
    tooLarge.sort((a, b) => b.bytes - a.bytes);
    const first = tooLarge[0]!;
    throw new MigrationError(
      'BlobTooLarge',
      `${tooLarge.length} blob(s) are larger than the ${formatBytes(limit)} the new server takes: ${tooLarge
        .slice(0, 5)
        .map((b) => `${b.cid} (${formatBytes(b.bytes)})`)
        .join(', ')}`,
      { kind: 'blob-too-large', cid: first.cid, bytes: first.bytes, limit, nothingChanged: true },
    );
  }
  return counted === 0
    ? undefined
    : `the largest of ${counted} blobs (${formatBytes(largest)}) is within the new server's ${formatBytes(limit)}`;
}
