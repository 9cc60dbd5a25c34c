import { ComAtprotoServerGetSession } from '@atcute/atproto';
import { sessionView } from '../../../../account/session-view.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

export default xrpcMethod(ComAtprotoServerGetSession.mainSchema, {
  auth: 'access',
  allowTakendown: true,
  async handler({ ctx, auth }) {
    const account = ctx.accountManager.getAccount(auth.did);
    if (!account) throw InvalidRequest(`Could not find user info for account: ${auth.did}`);
    return { json: sessionView(account, auth.scope) };
  },
});
