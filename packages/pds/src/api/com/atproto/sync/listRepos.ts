import { accountStatus } from '../../../../actor-store/repo-access.ts';
import { commitMeta } from '../../../../actor-store/repo-access.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Every hosted repository with its head and status, paged by DID. */
export default xrpcMethod({
  nsid: 'com.atproto.sync.listRepos',
  type: 'query',
  auth: 'none',
  async handler({ ctx, params }) {
    const limit = params.integer('limit', { min: 1, max: 1000 }) ?? 500;
    const cursor = params.string('cursor');
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
