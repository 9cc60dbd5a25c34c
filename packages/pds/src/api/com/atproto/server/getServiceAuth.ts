import { ComAtprotoServerGetServiceAuth } from '@atcute/atproto';
import { isValidDid } from '@portage/atproto/syntax/did';
import { AuthScope } from '../../../../auth/scopes.ts';
import { isPrivilegedMethod, isProtectedMethod } from '../../../../auth/protected-methods.ts';
import { checkRequestedExpiry, mintServiceJwt } from '../../../../auth/service-auth.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** A short-lived JWT, signed with the account's signing key, for calling another service. */
export default xrpcMethod(ComAtprotoServerGetServiceAuth.mainSchema, {
  auth: 'access',
  allowTakendown: true,
  async handler({ ctx, auth, params: { aud, lxm, exp: requestedExp } }) {
    // The lexicon's `did` format has no room for a did#serviceId reference, which is allowed.
    if (!isValidDid(aud.split('#')[0])) throw InvalidRequest('aud must be a DID');
    const exp = checkRequestedExpiry(requestedExp, lxm);
    if (lxm !== undefined && isProtectedMethod(lxm)) {
      throw InvalidRequest(`cannot request a service auth token for the following protected method: ${lxm}`);
    }
    if (auth.scope === AuthScope.AppPass && (lxm === undefined || isPrivilegedMethod(lxm))) {
      throw InvalidRequest(
        lxm === undefined
          ? 'cannot request a method-less token with an app password'
          : `insufficient access to request a service auth token for: ${lxm}`,
      );
    }
    // A taken-down account may only use a token to move its data elsewhere.
    if (auth.scope === AuthScope.Takendown && lxm !== 'com.atproto.server.createAccount') {
      throw InvalidRequest('a taken-down account can only request a token for com.atproto.server.createAccount');
    }
    const key = await ctx.actorStore.getSigningKey(auth.did);
    return { json: { token: await mintServiceJwt({ iss: auth.did, aud, lxm, exp, key }) } };
  },
});
