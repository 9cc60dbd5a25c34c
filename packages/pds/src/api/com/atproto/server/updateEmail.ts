import { ComAtprotoServerUpdateEmail } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * Changes the account's email address (with the mailed code when the old one was confirmed),
 * and turns sign-in codes by email on or off (`emailAuthFactor`).
 */
export default xrpcMethod(ComAtprotoServerUpdateEmail.mainSchema, {
  auth: 'accessFull',
  async handler({ ctx, auth, input }) {
    ctx.emailFlows.update(auth.did, input.email, input.token, input.emailAuthFactor);
  },
});
