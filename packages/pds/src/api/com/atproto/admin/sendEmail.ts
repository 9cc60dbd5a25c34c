import { ComAtprotoAdminSendEmail } from '@atcute/atproto';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Mails the account's owner a message from the server's operator or moderators. */
export default xrpcMethod(ComAtprotoAdminSendEmail.mainSchema, {
  auth: 'moderator',
  async handler({ ctx, input: { recipientDid, content, subject = 'Message via your PDS' } }) {
    const account = ctx.accountManager.getAccount(recipientDid);
    if (!account) throw InvalidRequest('Recipient not found');
    if (!account.email) throw InvalidRequest('account does not have an email address');
    await ctx.mailer.send({ to: account.email, subject, text: content });
    return { json: { sent: true } };
  },
});
