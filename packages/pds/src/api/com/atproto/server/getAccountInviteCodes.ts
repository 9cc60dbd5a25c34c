import { ComAtprotoServerGetAccountInviteCodes } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * The caller's invite codes with their uses. With invites required and PDS_INVITE_INTERVAL set,
 * `createAvailable` first creates the codes the account has earned since it last asked.
 */
export default xrpcMethod(ComAtprotoServerGetAccountInviteCodes.mainSchema, {
  auth: 'accessFull',
  async handler({ ctx, auth, params: { includeUsed, createAvailable } }) {
    const { inviteRequired, inviteInterval, inviteEpoch } = ctx.config;
    if (createAvailable !== false && inviteRequired && inviteInterval !== undefined) {
      ctx.accountManager.createEarnedInviteCodes(auth.did, { epochMs: inviteEpoch, intervalMs: inviteInterval });
    }
    return { json: { codes: ctx.accountManager.getAccountInviteCodes(auth.did, { includeUsed }) } };
  },
});
