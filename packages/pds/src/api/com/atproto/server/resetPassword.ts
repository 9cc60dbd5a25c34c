import { ComAtprotoServerResetPassword } from '@atcute/atproto';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** The reference's longest new password. */
const NEW_PASSWORD_MAX_LENGTH = 256;

/** Sets a new password with the mailed reset code; every session of the account ends. */
export default xrpcMethod(ComAtprotoServerResetPassword.mainSchema, {
  auth: 'none',
  rateLimit: [{ policy: 'resetPassword', key: ({ ip }) => ip }],
  async handler({ ctx, input }) {
    if (input.password.length > NEW_PASSWORD_MAX_LENGTH) throw InvalidRequest('Invalid password length.');
    await ctx.emailFlows.resetPassword(input.token, input.password);
  },
});
