import { ComAtprotoServerRequestAccountDelete } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Mails the account the code that deleteAccount asks for. */
export default xrpcMethod(ComAtprotoServerRequestAccountDelete.mainSchema, {
  auth: 'accessFull',
  allowTakendown: true,
  rateLimit: [{ policy: 'emailSend', key: ({ auth }) => `requestAccountDelete:${auth.did}` }],
  async handler({ ctx, auth }) {
    await ctx.emailFlows.requestAccountDelete(auth.did);
  },
});
