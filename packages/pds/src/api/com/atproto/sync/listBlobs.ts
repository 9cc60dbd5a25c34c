import { syncRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** CIDs of the blobs a repository's records reference; with `since`, records written after that rev. */
export default xrpcMethod({
  nsid: 'com.atproto.sync.listBlobs',
  type: 'query',
  auth: 'optionalAccessOrAdmin',
  allowTakendown: true,
  async handler({ ctx, params, auth }) {
    const did = params.requiredString('did');
    const since = params.string('since');
    const limit = params.integer('limit', { min: 1, max: 1000 }) ?? 500;
    const cursor = params.string('cursor');
    syncRepo(ctx.accountManager, did, auth);
    return withRepoErrors(() => {
      const cids = ctx.actorStore.listBlobs(did, { since, limit, cursor });
      return { json: { cids, ...(cids.length === limit ? { cursor: cids[cids.length - 1] } : {}) } };
    });
  },
});
