import { ComAtprotoServerRequestPasswordReset } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Mails a password-reset code to the account with this email address. */
export default xrpcMethod(ComAtprotoServerRequestPasswordReset.mainSchema, {
  auth: 'none',
  rateLimit: [{ policy: 'passwordResetRequest', key: ({ ip }) => ip }],
  async handler({ ctx, input }) {
    await ctx.emailFlows.requestPasswordReset(input.email);
  },
});
