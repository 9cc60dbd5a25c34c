import { ComAtprotoServerConfirmEmail } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Confirms the account's email address with the code requestEmailConfirmation mailed. */
export default xrpcMethod(ComAtprotoServerConfirmEmail.mainSchema, {
  auth: 'accessFull',
  allowTakendown: true,
  async handler({ ctx, auth, input }) {
    ctx.emailFlows.confirm(auth.did, input.email, input.token);
  },
});
