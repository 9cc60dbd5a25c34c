import { ComAtprotoAdminGetInviteCodes } from '@atcute/atproto';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Every invite code on the server with its uses, newest or most used first. */
export default xrpcMethod(ComAtprotoAdminGetInviteCodes.mainSchema, {
  auth: 'moderator',
  async handler({ ctx, params: { sort, limit, cursor } }) {
    if (sort !== 'recent' && sort !== 'usage') throw InvalidRequest(`unknown sort method: ${sort}`);
    return { json: ctx.accountManager.listInviteCodes({ sort: sort as 'recent' | 'usage', limit, cursor }) };
  },
});
