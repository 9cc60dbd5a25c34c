import { ComAtprotoServerRefreshSession } from '@atcute/atproto';
import { sessionView } from '../../../../account/session-view.ts';
import { AuthRequired, InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** New tokens for a refresh token; the old one keeps a short grace period (see AccountManager). */
export default xrpcMethod(ComAtprotoServerRefreshSession.mainSchema, {
  auth: 'refresh',
  async handler({ ctx, auth }) {
    const account = ctx.accountManager.getAccount(auth.did);
    if (!account) throw InvalidRequest(`Could not find user info for account: ${auth.did}`);
    if (account.takedownRef) throw AuthRequired('Account has been taken down', 'AccountTakedown');
    const rotated = await ctx.accountManager.rotateRefreshToken(auth.tokenId);
    if (!rotated) throw InvalidRequest('Token has been revoked', 'ExpiredToken');
    return { json: sessionView(account, rotated.scope, rotated) };
  },
});
