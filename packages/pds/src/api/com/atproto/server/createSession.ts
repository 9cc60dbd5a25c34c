import { sessionView } from '../../../../account/session-view.ts';
import { AuthRequired } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, optionalBoolean, requiredString } from '../../../../xrpc/input.ts';

/** Log in with a handle, email or DID and the account password or an app password. */
export default xrpcMethod({
  nsid: 'com.atproto.server.createSession',
  type: 'procedure',
  auth: 'none',
  async handler({ ctx, input }) {
    const body = inputObject(input);
    const identifier = requiredString(body, 'identifier');
    const password = requiredString(body, 'password');
    if (password.length > 1024) throw AuthRequired('Password too long. Consider resetting your password.');
    const { account, appPassword } = await ctx.accountManager.login(identifier, password);
    const takendown = account.takedownRef !== null;
    if (takendown && !optionalBoolean(body, 'allowTakendown')) {
      throw AuthRequired('Account has been taken down', 'AccountTakedown');
    }
    const session = await ctx.accountManager.createSession(account.did, appPassword, takendown);
    return { json: sessionView(account, session.scope, session) };
  },
});
