import { ComAtprotoAdminEnableAccountInvites } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Lets the account's invite codes be used again. */
export default xrpcMethod(ComAtprotoAdminEnableAccountInvites.mainSchema, {
  auth: 'moderator',
  async handler({ ctx, input: { account } }) {
    ctx.accountManager.setInvitesDisabled(account, false);
  },
});
