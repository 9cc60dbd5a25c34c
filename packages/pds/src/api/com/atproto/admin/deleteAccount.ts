import { ComAtprotoAdminDeleteAccount } from '@atcute/atproto';
import { deleteAccountEverywhere } from '../../../../account/delete-account.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Deletes an account for good, as its owner's deleteAccount does (admin password only). */
export default xrpcMethod(ComAtprotoAdminDeleteAccount.mainSchema, {
  auth: 'admin',
  async handler({ ctx, input: { did } }) {
    await deleteAccountEverywhere(ctx, did);
  },
});
