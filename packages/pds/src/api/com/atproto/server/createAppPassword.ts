import { ComAtprotoServerCreateAppPassword } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Full access only: an app password must not be able to mint more app passwords. */
export default xrpcMethod(ComAtprotoServerCreateAppPassword.mainSchema, {
  auth: 'accessFull',
  async handler({ ctx, auth, input: { name, privileged } }) {
    return { json: await ctx.accountManager.createAppPassword(auth.did, name, privileged ?? false) };
  },
});
