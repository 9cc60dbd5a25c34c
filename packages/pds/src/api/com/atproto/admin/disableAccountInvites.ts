import { ComAtprotoAdminDisableAccountInvites } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Stops the account's invite codes from being used (sign-up refuses them). */
export default xrpcMethod(ComAtprotoAdminDisableAccountInvites.mainSchema, {
  auth: 'moderator',
  async handler({ ctx, input: { account } }) {
    ctx.accountManager.setInvitesDisabled(account, true);
  },
});
