import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, optionalBoolean, requiredString } from '../../../../xrpc/input.ts';

/** Full access only: an app password must not be able to mint more app passwords. */
export default xrpcMethod({
  nsid: 'com.atproto.server.createAppPassword',
  type: 'procedure',
  auth: 'accessFull',
  async handler({ ctx, auth, input }) {
    const body = inputObject(input);
    const created = await ctx.accountManager.createAppPassword(
      auth.did,
      requiredString(body, 'name'),
      optionalBoolean(body, 'privileged') ?? false,
    );
    return { json: created };
  },
});
