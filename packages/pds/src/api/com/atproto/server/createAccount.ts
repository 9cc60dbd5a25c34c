import { createAccount } from '../../../../account/create-account.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, optionalString, requiredString } from '../../../../xrpc/input.ts';
import { AuthRequired } from '../../../../xrpc/errors.ts';

/**
 * Sign-up. Anyone may call it; bringing an existing `did` (a migration) requires a service
 * JWT from that DID for this method, checked here because only that case needs it.
 */
export default xrpcMethod({
  nsid: 'com.atproto.server.createAccount',
  type: 'procedure',
  auth: 'none',
  async handler({ ctx, input, req, nsid }) {
    const body = inputObject(input);
    const did = optionalString(body, 'did');
    if (did !== undefined) {
      const service = await ctx.authVerifier.service(req, nsid);
      if (service.did !== did) throw AuthRequired(`Missing auth to create account with did: ${did}`);
    }
    const created = await createAccount(ctx, {
      handle: requiredString(body, 'handle'),
      email: optionalString(body, 'email'),
      password: optionalString(body, 'password'),
      inviteCode: optionalString(body, 'inviteCode'),
      recoveryKey: optionalString(body, 'recoveryKey'),
      did,
    });
    return {
      json: { handle: created.handle, did: created.did, accessJwt: created.accessJwt, refreshJwt: created.refreshJwt },
    };
  },
});
