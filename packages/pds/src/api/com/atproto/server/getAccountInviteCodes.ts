import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** The caller's invite codes with their uses. Codes are issued by the admin, not on a schedule. */
export default xrpcMethod({
  nsid: 'com.atproto.server.getAccountInviteCodes',
  type: 'query',
  auth: 'accessFull',
  async handler({ ctx, auth, params }) {
    const includeUsed = params.boolean('includeUsed') ?? true;
    params.boolean('createAvailable');
    return { json: { codes: ctx.accountManager.getAccountInviteCodes(auth.did, { includeUsed }) } };
  },
});
