import { ComAtprotoIdentitySubmitPlcOperation } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * Sends a signed PLC operation to the directory after checking it keeps the account working
 * here (our rotation key, endpoint, the account's signing key and handle).
 */
export default xrpcMethod(ComAtprotoIdentitySubmitPlcOperation.mainSchema, {
  auth: 'accessFull',
  async handler({ ctx, auth, input }) {
    await ctx.migration.submitPlcOperation(auth.did, input.operation);
  },
});
