import { ComAtprotoAdminGetAccountInfos } from '@atcute/atproto';
import { adminAccountView } from '../../../../account/admin-view.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Several accounts as the admin sees them; DIDs not hosted here are left out. */
export default xrpcMethod(ComAtprotoAdminGetAccountInfos.mainSchema, {
  auth: 'moderator',
  async handler({ ctx, params: { dids } }) {
    const infos = [...new Set(dids)].flatMap((did) => {
      const account = ctx.accountManager.getAccount(did);
      return account ? [adminAccountView(ctx.accountManager, account, true)] : [];
    });
    return { json: { infos } };
  },
});
