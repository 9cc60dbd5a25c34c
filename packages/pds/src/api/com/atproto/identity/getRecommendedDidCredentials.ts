import { ComAtprotoIdentityGetRecommendedDidCredentials } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** The rotation key, handle, signing key and endpoint the DID's PLC operation should name. */
export default xrpcMethod(ComAtprotoIdentityGetRecommendedDidCredentials.mainSchema, {
  auth: 'access',
  async handler({ ctx, auth }) {
    return { json: await ctx.migration.recommendedDidCredentials(auth.did) };
  },
});
