import { ComAtprotoSyncListRepos } from '@atcute/atproto';
import { accountStatus, commitMeta } from '../../../../actor-store/repo-access.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Every hosted repository with its head and status, paged by DID. */
export default xrpcMethod(ComAtprotoSyncListRepos.mainSchema, {
  auth: 'none',
  async handler({ ctx, params: { limit, cursor } }) {
    const accounts = ctx.accountManager.listAccounts({ limit, cursor });
    const repos = [];
    for (const account of accounts) {
      const root = ctx.actorStore.getRootIndexed(account.did);
      if (!root) continue;
      const { cid, rev } = commitMeta(root);
      repos.push({ did: account.did, head: cid, rev, ...accountStatus(account) });
    }
    const last = accounts[accounts.length - 1];
    return { json: { repos, ...(accounts.length === limit && last ? { cursor: last.did } : {}) } };
  },
});
