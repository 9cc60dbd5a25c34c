import { AppBskyActorPutPreferences } from '@atcute/bluesky';
import { storePreferences } from '../../../../account/preferences.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

export default xrpcMethod(AppBskyActorPutPreferences.mainSchema, {
  auth: 'access',
  async handler({ ctx, auth, input }) {
    storePreferences(ctx.accountManager, auth, input.preferences);
  },
});
