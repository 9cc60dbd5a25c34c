import { ComAtprotoSyncGetHead } from '@atcute/atproto';
import { commitMeta, syncRepo } from '../../../../actor-store/repo-access.ts';
import { XrpcError } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Deprecated for getLatestCommit, still called by older consumers: the current commit CID. */
export default xrpcMethod(ComAtprotoSyncGetHead.mainSchema, {
  auth: 'optionalAccessOrAdmin',
  async handler({ ctx, params: { did }, auth }) {
    syncRepo(ctx.accountManager, did, auth);
    const root = ctx.actorStore.getRoot(did);
    if (!root) throw new XrpcError(400, 'HeadNotFound', `Could not find root for DID: ${did}`);
    return { json: { root: commitMeta(root).cid } };
  },
});
