import { ComAtprotoServerCreateAccount } from '@atcute/atproto';
import * as v from '@atcute/lexicons/validations';
import { createAccount } from '../../../../account/create-account.ts';
import { AuthRequired } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { withInputProperties } from '../../../../xrpc/lexicon.ts';

/**
 * Sign-up. Anyone may call it; bringing an existing `did` (a migration) requires a service
 * JWT from that DID for this method, checked here because only that case needs it.
 */
// The handle's syntax is checked by checkHandle, which names the problem (InvalidHandle, "Handle too short").
const lexicon = withInputProperties(ComAtprotoServerCreateAccount.mainSchema, { handle: v.string() });

export default xrpcMethod(lexicon, {
  auth: 'none',
  rateLimit: [{ policy: 'createAccount', key: ({ ip }) => ip }],
  async handler({ ctx, input, req, nsid }) {
    const { did } = input;
    if (did !== undefined) {
      const service = await ctx.authVerifier.service(req, nsid);
      if (service.did !== did) throw AuthRequired(`Missing auth to create account with did: ${did}`);
    }
    const created = await createAccount(ctx, {
      handle: input.handle,
      email: input.email,
      password: input.password,
      inviteCode: input.inviteCode,
      recoveryKey: input.recoveryKey,
      did,
    });
    return {
      json: { handle: created.handle, did: created.did, accessJwt: created.accessJwt, refreshJwt: created.refreshJwt },
    };
  },
});
