import { ComAtprotoServerDeactivateAccount } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Deactivates the account (after moving away); the owner can still sign in and read. */
export default xrpcMethod(ComAtprotoServerDeactivateAccount.mainSchema, {
  auth: 'accessFull',
  allowTakendown: true,
  async handler({ ctx, auth, input }) {
    await ctx.migration.deactivateAccount(auth.did, input.deleteAfter ?? null);
  },
});
