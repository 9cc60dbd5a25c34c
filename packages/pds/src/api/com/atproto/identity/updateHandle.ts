import { ComAtprotoIdentityUpdateHandle } from '@atcute/atproto';
import * as v from '@atcute/lexicons/validations';
import { checkHandle } from '../../../../account/handles.ts';
import { updatePlcHandle } from '../../../../identity/plc-identity.ts';
import { resolveHandleToDid } from '../../../../identity/handles.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { withInputProperties } from '../../../../xrpc/lexicon.ts';

/**
 * Changes the account's handle: a hosted handle under our rules, or a custom domain that
 * already resolves to the account. The DID document changes first (a PLC operation), then
 * the account DB; if the second step fails, calling again finishes the job.
 */
// The handle's syntax is checked by checkHandle, which names the problem (InvalidHandle, "Handle too short").
const lexicon = withInputProperties(ComAtprotoIdentityUpdateHandle.mainSchema, { handle: v.string() });

export default xrpcMethod(lexicon, {
  auth: 'access',
  rateLimit: [{ policy: 'updateHandle', key: ({ auth }) => auth.did }],
  async handler({ ctx, auth, input }) {
    const { handle, hosted } = checkHandle(input.handle, ctx.config.serviceHandleDomains, { allowExternal: true });
    const existing = ctx.accountManager.getAccount(handle);
    if (existing && existing.did !== auth.did) {
      throw InvalidRequest(`Handle already taken: ${handle}`, 'HandleNotAvailable');
    }
    if (!hosted && (await resolveHandleToDid(ctx, handle)) !== auth.did) {
      throw InvalidRequest('External handle did not resolve to DID');
    }
    if (auth.did.startsWith('did:plc:')) {
      await updatePlcHandle(ctx, auth.did, handle);
    } else {
      const doc = await ctx.didResolver.resolve(auth.did, { noCache: true });
      if (!doc.alsoKnownAs?.includes(`at://${handle}`))
        throw InvalidRequest('DID is not properly configured for handle');
    }
    // Writes the handle and its #identity event in one transaction.
    ctx.accountManager.updateHandle(auth.did, handle);
  },
});
