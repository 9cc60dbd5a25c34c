import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject } from '../../../../xrpc/input.ts';

/**
 * Sends a signed PLC operation to the directory after checking it keeps the account working
 * here (our rotation key, endpoint, the account's signing key and handle).
 */
export default xrpcMethod({
  nsid: 'com.atproto.identity.submitPlcOperation',
  type: 'procedure',
  auth: 'accessFull',
  async handler({ ctx, auth, input }) {
    const body = inputObject(input);
    await ctx.migration.submitPlcOperation(auth.did, body.operation);
  },
});
