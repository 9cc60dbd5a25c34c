import { ComAtprotoSyncGetLatestCommit } from '@atcute/atproto';
import { commitMeta, syncRepo } from '../../../../actor-store/repo-access.ts';
import { XrpcError } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** The current commit CID and rev of a repository. */
export default xrpcMethod(ComAtprotoSyncGetLatestCommit.mainSchema, {
  auth: 'optionalAccessOrAdmin',
  async handler({ ctx, params: { did }, auth }) {
    syncRepo(ctx.accountManager, did, auth);
    const root = ctx.actorStore.getRoot(did);
    if (!root) throw new XrpcError(400, 'RepoNotFound', `Could not find root for DID: ${did}`);
    return { json: commitMeta(root) };
  },
});
