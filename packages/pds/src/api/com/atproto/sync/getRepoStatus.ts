import { ComAtprotoSyncGetRepoStatus } from '@atcute/atproto';
import { accountStatus, hostedRepo } from '../../../../actor-store/repo-access.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Whether a hosted repository is active, and its current rev. */
export default xrpcMethod(ComAtprotoSyncGetRepoStatus.mainSchema, {
  auth: 'none',
  async handler({ ctx, params: { did } }) {
    const status = accountStatus(hostedRepo(ctx.accountManager, did));
    const root = status.active ? ctx.actorStore.getRoot(did) : undefined;
    return { json: { did, ...status, ...(root ? { rev: root.rev } : {}) } };
  },
});
