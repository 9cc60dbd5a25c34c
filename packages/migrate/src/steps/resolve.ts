/**
 * Step "resolve": from a handle or DID to the account's DID document, its old server and the
 * journal of earlier runs; takes the storage lock on the account so two runs never interleave.
 */
import { type DidDocument, getHandle, getPdsEndpoint, sameServiceUrl } from '@portage/atproto/identity/did-document';
import { IdentityError } from '@portage/atproto/identity/errors';
import { HandleResolver } from '@portage/atproto/identity/handle-resolver';
import { XrpcClient } from '@portage/atproto/xrpc/client';
import { MigrationError } from '../errors.ts';
import { journalKey, loadJournal } from '../journal.ts';
import type { NextStep } from '../next-steps.ts';
import { describeError } from '../retry.ts';
import { type RunContext, type RunState, saveState } from './run.ts';

export async function resolveAccount(ctx: RunContext, state: RunState): Promise<string> {
  const from = ctx.options.from.trim().replace(/^@/, '');
  let handle: string | undefined;
  if (from.startsWith('did:')) {
    state.did = from;
  } else {
    handle = from.toLowerCase();
    state.did = (await resolveHandle(ctx, handle)) ?? '';
    if (!state.did) {
      throw new MigrationError('UnknownHandle', `no account found for the handle ${handle}`, {
        kind: 'need-input',
        field: 'from',
        reason: 'not-found',
        nothingChanged: true,
      });
    }
  }
  await lockAccount(ctx, state);
  let doc: DidDocument;
  try {
    doc = await ctx.didResolver.resolve(state.did, { noCache: true });
  } catch (err) {
    if (err instanceof IdentityError) {
      const next: NextStep =
        err.code === 'DidNotFound' || err.code === 'InvalidDid'
          ? { kind: 'need-input', field: 'from', reason: 'not-found', nothingChanged: true }
          : { kind: 'run-again', reason: 'unavailable', nothingChanged: true };
      throw new MigrationError(err.code, err.message, next, { cause: err });
    }
    throw err;
  }
  state.doc = doc;
  const docHandle = getHandle(doc);
  if (handle && docHandle?.toLowerCase() !== handle) {
    throw new MigrationError(
      'HandleMismatch',
      `the handle ${handle} points to ${state.did}, but that DID's document names ${docHandle ? `the handle ${docHandle}` : 'no handle'}`,
      { kind: 'need-input', field: 'from', reason: 'mismatch', nothingChanged: true },
    );
  }

  const earlier = await loadJournal(ctx.env.storage, state.did);
  const docPds = getPdsEndpoint(doc);
  // The new server may be reached through another URL than the one it publishes (a proxy, a
  // private address): the endpoint it recommended is remembered for this check.
  const published = earlier?.newPdsEndpoint;
  state.identityMoved =
    docPds !== undefined &&
    (sameServiceUrl(docPds, ctx.to) || (published !== undefined && sameServiceUrl(docPds, published)));
  const oldPds = ctx.fromPds ?? (state.identityMoved ? earlier?.oldPds : docPds);
  if (!oldPds) {
    if (state.identityMoved) {
      throw new MigrationError('AlreadyMigrated', `${state.did} already lives on ${ctx.to}`, { kind: 'already-moved' });
    }
    throw new MigrationError('NoPds', `the DID document of ${state.did} names no PDS`, {
      kind: 'need-input',
      field: 'fromPds',
      reason: 'missing',
      nothingChanged: true,
    });
  }
  if (sameServiceUrl(oldPds, ctx.to)) {
    throw new MigrationError('SameServer', `the account already lives on ${ctx.to}`, {
      kind: 'need-input',
      field: 'to',
      reason: 'same-server',
      nothingChanged: true,
    });
  }
  if (earlier && !sameServiceUrl(earlier.newPds, ctx.to) && !earlier.identityUpdatedAt) {
    ctx.emit({
      type: 'warning',
      step: 'resolve',
      message: `an earlier run targeted ${earlier.newPds}; this run targets ${ctx.to}`,
    });
  }
  const now = new Date().toISOString();
  state.journal = {
    version: 1,
    failedBlobs: {},
    createdAt: now,
    updatedAt: now,
    ...earlier,
    did: state.did,
    oldPds,
    newPds: ctx.to,
  };
  // Blobs that failed in an earlier run get another chance in this one (failedBlobs starts empty).
  await saveState(ctx, state);
  return `${handle ?? docHandle ?? state.did} is ${state.did}, hosted on ${oldPds}${state.identityMoved ? ' (the DID already points to the new server)' : ''}`;
}

/** One run per account and journal: a second one would undo the first one's bookkeeping. */
async function lockAccount(ctx: RunContext, state: RunState): Promise<void> {
  const attempt = await ctx.env.storage.lock?.(journalKey(state.did));
  if (!attempt) return;
  if (!attempt.acquired) {
    throw new MigrationError('MigrationRunning', `another migration of ${state.did} is running (${attempt.holder})`, {
      kind: 'wait-for-other-run',
      location: attempt.location,
      nothingChanged: true,
    });
  }
  state.releaseLock = attempt.release;
}

async function resolveHandle(ctx: RunContext, handle: string): Promise<string | undefined> {
  // With a given old server, the old server knows its own handles: that also covers handles that
  // only exist inside a test network or behind split DNS.
  if (ctx.fromPds) {
    try {
      const client = new XrpcClient({ service: ctx.fromPds, fetch: ctx.fetch });
      const out = await client.query<{ did?: string }>(
        'com.atproto.identity.resolveHandle',
        { handle },
        { timeoutMs: 30_000 },
      );
      if (typeof out?.did === 'string') return out.did;
    } catch {
      // Fall through to DNS and HTTPS.
    }
  }
  if (!ctx.env.resolveTxt) return undefined;
  const resolver = new HandleResolver({ resolveTxt: ctx.env.resolveTxt, fetch: ctx.fetch });
  try {
    return await resolver.resolve(handle);
  } catch (err) {
    throw new MigrationError(
      'InvalidHandle',
      describeError(err),
      { kind: 'need-input', field: 'from', reason: 'invalid', nothingChanged: true },
      {
        cause: err,
      },
    );
  }
}
