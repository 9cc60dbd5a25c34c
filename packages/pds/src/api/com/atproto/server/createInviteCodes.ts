import { ComAtprotoServerCreateInviteCodes } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Admin only: `codeCount` codes for each of `forAccounts` (default: one batch for "admin"). */
export default xrpcMethod(ComAtprotoServerCreateInviteCodes.mainSchema, {
  auth: 'admin',
  async handler({ ctx, input: { codeCount, useCount, forAccounts = ['admin'] } }) {
    const codes = ctx.accountManager.createInviteCodes({ forAccounts, count: codeCount, useCount, createdBy: 'admin' });
    return { json: { codes } };
  },
});
