import { ComAtprotoServerGetSession } from '@atcute/atproto';
import { AuthScope } from '../../../../auth/scopes.ts';
import { sessionView } from '../../../../account/session-view.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

export default xrpcMethod(ComAtprotoServerGetSession.mainSchema, {
  auth: 'access',
  allowTakendown: true,
  async handler({ ctx, auth }) {
    const account = ctx.accountManager.getAccount(auth.did);
    if (!account) throw InvalidRequest(`Could not find user info for account: ${auth.did}`);
    // An app sees the email address only when the user let it (account:email, transition:email).
    const hideEmail = auth.oauth && !auth.oauth.permissions.allowsAccount('email', 'read');
    return { json: sessionView(account, hideEmail ? AuthScope.AppPass : auth.scope) };
  },
});
