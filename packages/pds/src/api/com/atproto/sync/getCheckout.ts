import { ComAtprotoSyncGetCheckout } from '@atcute/atproto';
import { syncRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Deprecated for getRepo, still called by older consumers: the whole repository as a streaming CAR. */
export default xrpcMethod(ComAtprotoSyncGetCheckout.mainSchema, {
  auth: 'optionalAccessOrAdmin',
  async handler({ ctx, params: { did }, auth }) {
    syncRepo(ctx.accountManager, did, auth);
    return withRepoErrors(() => ({ body: ctx.actorStore.exportCar(did), contentType: 'application/vnd.ipld.car' }));
  },
});
