import { accountStatus, hostedRepo } from '../../../../actor-store/repo-access.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Whether a hosted repository is active, and its current rev. */
export default xrpcMethod({
  nsid: 'com.atproto.sync.getRepoStatus',
  type: 'query',
  auth: 'none',
  async handler({ ctx, params }) {
    const did = params.requiredString('did');
    const account = hostedRepo(ctx.accountManager, did);
    const status = accountStatus(account);
    const root = status.active ? ctx.actorStore.getRoot(did) : undefined;
    return { json: { did, ...status, ...(root ? { rev: root.rev } : {}) } };
  },
});
