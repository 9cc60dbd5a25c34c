import { ComAtprotoServerRevokeAppPassword } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Deletes an app password and ends every session that logged in with it. */
export default xrpcMethod(ComAtprotoServerRevokeAppPassword.mainSchema, {
  auth: 'access',
  async handler({ ctx, auth, input }) {
    ctx.accountManager.revokeAppPassword(auth.did, input.name);
  },
});
