import { ComAtprotoSyncListBlobs } from '@atcute/atproto';
import { syncRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** CIDs of the blobs a repository's records reference; with `since`, records written after that rev. */
export default xrpcMethod(ComAtprotoSyncListBlobs.mainSchema, {
  auth: 'optionalAccessOrAdmin',
  allowTakendown: true,
  async handler({ ctx, params: { did, since, limit, cursor }, auth }) {
    syncRepo(ctx.accountManager, did, auth);
    return withRepoErrors(() => {
      const cids = ctx.actorStore.listBlobs(did, { since, limit, cursor });
      return { json: { cids, ...(cids.length === limit ? { cursor: cids[cids.length - 1] } : {}) } };
    });
  },
});
