import { ComAtprotoServerDeleteSession } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * Log out: the refresh token (and so the session) stops working at once. The token is
 * checked here rather than by the `refresh` mode because an expired one must still be able
 * to end its session.
 */
export default xrpcMethod(ComAtprotoServerDeleteSession.mainSchema, {
  auth: 'none',
  async handler({ ctx, req }) {
    const auth = await ctx.authVerifier.refresh(req, { allowExpired: true });
    ctx.accountManager.revokeRefreshToken(auth.tokenId);
  },
});
