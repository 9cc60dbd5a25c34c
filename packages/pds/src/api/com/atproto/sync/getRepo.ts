import { ComAtprotoSyncGetRepo } from '@atcute/atproto';
import { syncRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** The whole repository as a streaming CAR; with `since`, only what changed after that rev. */
export default xrpcMethod(ComAtprotoSyncGetRepo.mainSchema, {
  auth: 'optionalAccessOrAdmin',
  allowTakendown: true,
  async handler({ ctx, params: { did, since }, auth }) {
    syncRepo(ctx.accountManager, did, auth);
    return withRepoErrors(() => ({
      body: ctx.actorStore.exportCar(did, since),
      contentType: 'application/vnd.ipld.car',
    }));
  },
});
