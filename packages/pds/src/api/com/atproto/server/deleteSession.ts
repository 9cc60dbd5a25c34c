import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Log out: the refresh token (and so the session) stops working at once. */
export default xrpcMethod({
  nsid: 'com.atproto.server.deleteSession',
  type: 'procedure',
  auth: 'refresh',
  async handler({ ctx, auth }) {
    ctx.accountManager.revokeRefreshToken(auth.tokenId);
  },
});
