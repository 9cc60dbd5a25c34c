import { xrpcMethod } from '../../../../xrpc/handler.ts';

export default xrpcMethod({
  nsid: 'com.atproto.server.listAppPasswords',
  type: 'query',
  auth: 'access',
  async handler({ ctx, auth }) {
    return { json: { passwords: ctx.accountManager.listAppPasswords(auth.did) } };
  },
});
