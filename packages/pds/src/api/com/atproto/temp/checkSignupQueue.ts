import { ComAtprotoTempCheckSignupQueue } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Portage has no sign-up queue: every account is activated at once, as on the reference PDS. */
export default xrpcMethod(ComAtprotoTempCheckSignupQueue.mainSchema, {
  auth: 'access',
  allowTakendown: true,
  async handler() {
    return { json: { activated: true } };
  },
});
