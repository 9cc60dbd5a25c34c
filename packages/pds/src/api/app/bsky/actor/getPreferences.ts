import { preferencesFor } from '../../../../account/preferences.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

export default xrpcMethod({
  nsid: 'app.bsky.actor.getPreferences',
  type: 'query',
  auth: 'access',
  allowTakendown: true,
  async handler({ ctx, auth }) {
    return { json: { preferences: preferencesFor(ctx.accountManager, auth) } };
  },
});
