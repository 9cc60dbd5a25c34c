import { ComAtprotoServerListAppPasswords } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

export default xrpcMethod(ComAtprotoServerListAppPasswords.mainSchema, {
  auth: 'access',
  async handler({ ctx, auth }) {
    return { json: { passwords: ctx.accountManager.listAppPasswords(auth.did) } };
  },
});
