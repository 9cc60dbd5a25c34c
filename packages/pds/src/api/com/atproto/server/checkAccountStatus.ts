import { ComAtprotoServerCheckAccountStatus } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Where a migration stands: activation, DID document, repository and blob counts. */
export default xrpcMethod(ComAtprotoServerCheckAccountStatus.mainSchema, {
  auth: 'access',
  async handler({ ctx, auth }) {
    return { json: await ctx.migration.accountStatus(auth.did) };
  },
});
