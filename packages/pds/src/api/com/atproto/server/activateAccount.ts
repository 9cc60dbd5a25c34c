import { ComAtprotoServerActivateAccount } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * Activates an account that moved in, once its DID document points here; the error names
 * the check that failed (endpoint, signing key or rotation key).
 */
export default xrpcMethod(ComAtprotoServerActivateAccount.mainSchema, {
  auth: 'accessFull',
  async handler({ ctx, auth }) {
    await ctx.migration.activateAccount(auth.did);
  },
});
