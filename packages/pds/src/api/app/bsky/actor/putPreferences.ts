import { storePreferences } from '../../../../account/preferences.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, requiredArray } from '../../../../xrpc/input.ts';

export default xrpcMethod({
  nsid: 'app.bsky.actor.putPreferences',
  type: 'procedure',
  auth: 'access',
  async handler({ ctx, auth, input }) {
    storePreferences(ctx.accountManager, auth, requiredArray(inputObject(input), 'preferences'));
  },
});
