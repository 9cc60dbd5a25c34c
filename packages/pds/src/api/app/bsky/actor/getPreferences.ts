import { AppBskyActorGetPreferences } from '@atcute/bluesky';
import { preferencesFor } from '../../../../account/preferences.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

export default xrpcMethod(AppBskyActorGetPreferences.mainSchema, {
  auth: 'access',
  allowTakendown: true,
  async handler({ ctx, auth }) {
    return { json: { preferences: preferencesFor(ctx.accountManager, auth) } };
  },
});
