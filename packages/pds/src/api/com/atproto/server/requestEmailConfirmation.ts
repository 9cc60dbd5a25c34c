import { ComAtprotoServerRequestEmailConfirmation } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Mails the account a code that confirms its email address (confirmEmail). */
export default xrpcMethod(ComAtprotoServerRequestEmailConfirmation.mainSchema, {
  auth: 'accessFull',
  allowTakendown: true,
  rateLimit: [{ policy: 'emailSend', key: ({ auth }) => `requestEmailConfirmation:${auth.did}` }],
  async handler({ ctx, auth }) {
    await ctx.emailFlows.requestConfirmation(auth.did);
  },
});
