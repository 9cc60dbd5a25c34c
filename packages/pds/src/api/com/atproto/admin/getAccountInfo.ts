import { ComAtprotoAdminGetAccountInfo } from '@atcute/atproto';
import { adminAccountView } from '../../../../account/admin-view.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** One account as the admin sees it, whatever its status, with its invite codes. */
export default xrpcMethod(ComAtprotoAdminGetAccountInfo.mainSchema, {
  auth: 'moderator',
  async handler({ ctx, params: { did } }) {
    const account = ctx.accountManager.getAccount(did);
    if (!account) throw InvalidRequest('Account not found', 'NotFound');
    return { json: adminAccountView(ctx.accountManager, account, true) };
  },
});
