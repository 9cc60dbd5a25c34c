import { ComAtprotoAdminUpdateAccountEmail } from '@atcute/atproto';
import { isValidEmail } from '../../../../account/email.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Sets an account's email address (handle or DID), with no confirmation asked. */
export default xrpcMethod(ComAtprotoAdminUpdateAccountEmail.mainSchema, {
  auth: 'admin',
  async handler({ ctx, input }) {
    const account = ctx.accountManager.getAccount(input.account);
    if (!account) throw InvalidRequest(`Account does not exist: ${input.account}`);
    if (!isValidEmail(input.email))
      throw InvalidRequest('This email address is not supported, please use a different email.');
    ctx.accountManager.updateEmail(account.did, input.email);
  },
});
