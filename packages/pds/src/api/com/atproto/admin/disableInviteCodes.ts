import { ComAtprotoAdminDisableInviteCodes } from '@atcute/atproto';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Disables the given codes and every code of the given accounts. */
export default xrpcMethod(ComAtprotoAdminDisableInviteCodes.mainSchema, {
  auth: 'moderator',
  async handler({ ctx, input: { codes = [], accounts = [] } }) {
    if (accounts.includes('admin')) throw InvalidRequest('cannot disable admin invite codes');
    ctx.accountManager.disableInviteCodes({ codes, accounts });
  },
});
