import { ComAtprotoAdminUpdateAccountHandle } from '@atcute/atproto';
import * as v from '@atcute/lexicons/validations';
import { checkHandle } from '../../../../account/handles.ts';
import { updatePlcHandle } from '../../../../identity/plc-identity.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { withInputProperties } from '../../../../xrpc/lexicon.ts';

/**
 * Changes an account's handle without asking the handle to resolve first (the reference's
 * allowAnyValid): the DID document (a PLC operation with our rotation key), then the account.
 */
const lexicon = withInputProperties(ComAtprotoAdminUpdateAccountHandle.mainSchema, { handle: v.string() });

export default xrpcMethod(lexicon, {
  auth: 'admin',
  async handler({ ctx, input: { did, handle: requested } }) {
    const { handle } = checkHandle(requested, ctx.config.serviceHandleDomains, { allowExternal: true });
    if (!ctx.accountManager.getAccount(did)) throw InvalidRequest(`Account does not exist: ${did}`);
    const existing = ctx.accountManager.getAccount(handle);
    if (existing && existing.did !== did) throw InvalidRequest(`Handle already taken: ${handle}`);
    if (did.startsWith('did:plc:')) await updatePlcHandle(ctx, did, handle);
    ctx.accountManager.updateHandle(did, handle);
  },
});
