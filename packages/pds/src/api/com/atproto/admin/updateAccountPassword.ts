import { ComAtprotoAdminUpdateAccountPassword } from '@atcute/atproto';
import { NEW_PASSWORD_MAX_LENGTH } from '../../../../account/account-manager.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Sets an account's password; its sessions end, as with a reset. */
export default xrpcMethod(ComAtprotoAdminUpdateAccountPassword.mainSchema, {
  auth: 'admin',
  async handler({ ctx, input: { did, password } }) {
    if (password.length > NEW_PASSWORD_MAX_LENGTH) throw InvalidRequest('Invalid password length.');
    if (!ctx.accountManager.getAccount(did)) throw InvalidRequest(`Account does not exist: ${did}`);
    await ctx.accountManager.updatePassword(did, password);
  },
});
