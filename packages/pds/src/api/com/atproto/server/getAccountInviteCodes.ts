import { ComAtprotoServerGetAccountInviteCodes } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** The caller's invite codes with their uses. Codes are issued by the admin, not on a schedule. */
export default xrpcMethod(ComAtprotoServerGetAccountInviteCodes.mainSchema, {
  auth: 'accessFull',
  async handler({ ctx, auth, params: { includeUsed } }) {
    return { json: { codes: ctx.accountManager.getAccountInviteCodes(auth.did, { includeUsed }) } };
  },
});
