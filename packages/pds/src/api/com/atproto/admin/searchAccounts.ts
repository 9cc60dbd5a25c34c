import { ComAtprotoAdminSearchAccounts } from '@atcute/atproto';
import { adminAccountView } from '../../../../account/admin-view.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Accounts by email prefix (every account without one), in pages ordered by DID. */
export default xrpcMethod(ComAtprotoAdminSearchAccounts.mainSchema, {
  auth: 'moderator',
  async handler({ ctx, params: { email, cursor, limit } }) {
    const accounts = ctx.accountManager.searchAccounts({ email, cursor, limit });
    return {
      json: {
        accounts: accounts.map((account) => adminAccountView(ctx.accountManager, account, false)),
        cursor: accounts.length === limit ? accounts.at(-1)?.did : undefined,
      },
    };
  },
});
