import { ComAtprotoServerRequestEmailUpdate } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Starts a change of email address: a confirmed address gets a code that updateEmail asks for. */
export default xrpcMethod(ComAtprotoServerRequestEmailUpdate.mainSchema, {
  auth: 'accessFull',
  rateLimit: [{ policy: 'emailSend', key: ({ auth }) => `requestEmailUpdate:${auth.did}` }],
  async handler({ ctx, auth }) {
    return { json: await ctx.emailFlows.requestUpdate(auth.did) };
  },
});
