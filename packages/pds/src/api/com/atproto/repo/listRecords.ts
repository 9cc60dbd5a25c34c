import { ComAtprotoRepoListRecords } from '@atcute/atproto';
import { readableRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** A page of one collection, newest rkey first (oldest first with `reverse`). */
export default xrpcMethod(ComAtprotoRepoListRecords.mainSchema, {
  auth: 'none',
  async handler({ ctx, params: { repo, collection, limit, cursor, reverse } }) {
    const account = readableRepo(ctx.accountManager, repo);
    return withRepoErrors(() => {
      const page = ctx.actorStore.listRecords(account.did, collection, { limit, cursor, reverse: reverse ?? false });
      return { json: { records: page.records, ...(page.cursor === undefined ? {} : { cursor: page.cursor }) } };
    });
  },
});
