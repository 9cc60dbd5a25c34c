import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, requiredString } from '../../../../xrpc/input.ts';

/** Deletes an app password and ends every session that logged in with it. */
export default xrpcMethod({
  nsid: 'com.atproto.server.revokeAppPassword',
  type: 'procedure',
  auth: 'access',
  async handler({ ctx, auth, input }) {
    ctx.accountManager.revokeAppPassword(auth.did, requiredString(inputObject(input), 'name'));
  },
});
