/**
 * Changes to an account's did:plc made by this PDS with its rotation key: submitting
 * operations (with PLC failures turned into XRPC errors a client can act on) and the handle
 * update, which rewrites `alsoKnownAs` on top of the DID's latest operation.
 */
import { PlcError } from '@portage/atproto/plc/client';
import { type AnyPlcOperation, normalizePlcOperation, updateOperation } from '@portage/atproto/plc/operations';
import type { AppContext } from '../context.ts';
import { InvalidRequest, UpstreamFailure, XrpcError } from '../xrpc/errors.ts';

/** Submits an operation; a refusal is a 400, an unreachable directory a 502. */
export async function submitToPlc(ctx: AppContext, did: string, op: AnyPlcOperation): Promise<void> {
  try {
    await ctx.plcClient.submitOperation(did, op);
  } catch (err) {
    throw plcFailure(ctx, did, err);
  } finally {
    // The document changed (or may have, if the answer was lost): no cached copy may stand for it.
    await ctx.didResolver.forget(did);
  }
}

function plcFailure(ctx: AppContext, did: string, err: unknown): XrpcError {
  if (err instanceof XrpcError) return err;
  if (err instanceof PlcError && err.code !== 'Unavailable') {
    return InvalidRequest(`The PLC directory refused the operation: ${err.message}`, 'IncompatibleDidDoc');
  }
  ctx.logger.error({ err, did }, 'PLC directory unavailable');
  return UpstreamFailure('The PLC directory could not be reached');
}

/**
 * Points the DID's `alsoKnownAs` at the new handle (first entry, replacing the previous
 * at:// handle; other entries are kept). Needs this PDS's rotation key in the DID's keys.
 */
export async function updatePlcHandle(ctx: AppContext, did: string, handle: string): Promise<void> {
  let audit: Awaited<ReturnType<AppContext['plcClient']['getAuditLog']>>;
  try {
    audit = await ctx.plcClient.getAuditLog(did);
  } catch (err) {
    throw plcFailure(ctx, did, err);
  }
  const last = audit.filter((e) => !e.nullified).at(-1);
  if (!last) throw InvalidRequest(`The PLC directory has no operations for ${did}`);
  const op = last.operation as AnyPlcOperation;
  if (op.type === 'plc_tombstone') throw InvalidRequest(`${did} is tombstoned`);
  const base = normalizePlcOperation(op).alsoKnownAs;
  const alsoKnownAs = [`at://${handle}`, ...base.filter((aka) => !aka.startsWith('at://'))];
  const next = await updateOperation(op, last.cid, { alsoKnownAs }, ctx.plcRotationKey);
  await submitToPlc(ctx, did, next);
}
