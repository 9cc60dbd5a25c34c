import { ComAtprotoIdentityRequestPlcOperationSignature } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Emails the account a one-time token (15 minutes) that signPlcOperation asks for. */
export default xrpcMethod(ComAtprotoIdentityRequestPlcOperationSignature.mainSchema, {
  auth: 'accessFull',
  allowTakendown: true,
  async handler({ ctx, auth }) {
    await ctx.migration.requestPlcOperationSignature(auth.did);
  },
});
