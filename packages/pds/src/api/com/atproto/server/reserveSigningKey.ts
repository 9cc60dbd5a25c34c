import { ComAtprotoServerReserveSigningKey } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * Reserves a repository signing key for an account to be created here, so that a DID moving in
 * can put it in its PLC operation first; createAccount for that DID then uses it.
 */
export default xrpcMethod(ComAtprotoServerReserveSigningKey.mainSchema, {
  auth: 'none',
  async handler({ ctx, input }) {
    return { json: { signingKey: await ctx.actorStore.reserveSigningKey(input.did) } };
  },
});
