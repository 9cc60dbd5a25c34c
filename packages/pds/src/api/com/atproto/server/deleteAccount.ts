import { ComAtprotoServerDeleteAccount } from '@atcute/atproto';
import { deleteAccountEverywhere } from '../../../../account/delete-account.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Deletes the account for good, given its password and the code requestAccountDelete mailed. */
export default xrpcMethod(ComAtprotoServerDeleteAccount.mainSchema, {
  auth: 'none',
  rateLimit: [{ policy: 'mailedCodeCheck', key: ({ ip }) => `deleteAccount:${ip}` }],
  async handler({ ctx, input: { did, password, token } }) {
    await ctx.emailFlows.authorizeAccountDelete(did, password, token);
    await deleteAccountEverywhere(ctx, did);
  },
});
