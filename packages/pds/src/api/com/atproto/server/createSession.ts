import { ComAtprotoServerCreateSession } from '@atcute/atproto';
import { sessionView } from '../../../../account/session-view.ts';
import { AuthRequired } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Log in with a handle, email or DID and the account password or an app password. */
export default xrpcMethod(ComAtprotoServerCreateSession.mainSchema, {
  auth: 'none',
  // The reference's login limit, per identifier and client address.
  rateLimit: [{ policy: 'createSession', key: ({ input, ip }) => `${input.identifier}-${ip}` }],
  async handler({ ctx, input: { identifier, password, allowTakendown, authFactorToken } }) {
    if (password.length > 1024) throw AuthRequired('Password too long. Consider resetting your password.');
    const { account, appPassword } = await ctx.accountManager.login(identifier, password);
    // App passwords are for apps that cannot ask for a code, as on Bluesky's own servers.
    if (!appPassword) await ctx.emailFlows.checkSignInCode(account, authFactorToken);
    const takendown = account.takedownRef !== null;
    if (takendown && !allowTakendown) throw AuthRequired('Account has been taken down', 'AccountTakedown');
    const session = await ctx.accountManager.createSession(account.did, appPassword, takendown);
    return { json: sessionView(account, session.scope, session) };
  },
});
