import { ComAtprotoServerCreateInviteCode } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Admin only. `forAccount` defaults to "admin", as in the reference. */
export default xrpcMethod(ComAtprotoServerCreateInviteCode.mainSchema, {
  auth: 'admin',
  async handler({ ctx, input: { useCount, forAccount = 'admin' } }) {
    const [created] = ctx.accountManager.createInviteCodes({
      forAccounts: [forAccount],
      count: 1,
      useCount,
      createdBy: 'admin',
    });
    return { json: { code: created!.codes[0] } };
  },
});
