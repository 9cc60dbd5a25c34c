import { ComAtprotoRepoDescribeRepo } from '@atcute/atproto';
import { getHandle } from '@portage/atproto/identity/did-document';
import { readableRepo } from '../../../../actor-store/repo-access.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Who a repository belongs to, its DID document, and which collections it holds. */
export default xrpcMethod(ComAtprotoRepoDescribeRepo.mainSchema, {
  auth: 'none',
  async handler({ ctx, params }) {
    const account = readableRepo(ctx.accountManager, params.repo);
    let didDoc: unknown = {};
    let handleIsCorrect = false;
    try {
      const doc = await ctx.didResolver.resolve(account.did);
      didDoc = doc;
      handleIsCorrect = account.handle !== null && getHandle(doc) === account.handle;
    } catch {
      // An unreachable directory must not hide the repository; the client learns the handle is unverified.
    }
    return {
      json: {
        handle: account.handle ?? 'handle.invalid',
        did: account.did,
        didDoc,
        collections: ctx.actorStore.listCollections(account.did),
        handleIsCorrect,
      },
    };
  },
});
