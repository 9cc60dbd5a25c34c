import { ComAtprotoServerResetPassword } from '@atcute/atproto';
import { NEW_PASSWORD_MAX_LENGTH } from '../../../../account/account-manager.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Sets a new password with the mailed reset code; every session of the account ends. */
export default xrpcMethod(ComAtprotoServerResetPassword.mainSchema, {
  auth: 'none',
  rateLimit: [{ policy: 'mailedCodeCheck', key: ({ ip }) => `resetPassword:${ip}` }],
  async handler({ ctx, input }) {
    if (input.password.length > NEW_PASSWORD_MAX_LENGTH) throw InvalidRequest('Invalid password length.');
    await ctx.emailFlows.resetPassword(input.token, input.password);
  },
});
