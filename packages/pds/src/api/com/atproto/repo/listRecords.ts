import { assertCollection } from '../../../../actor-store/prepare-writes.ts';
import { readableRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** A page of one collection, newest rkey first (oldest first with `reverse`). */
export default xrpcMethod({
  nsid: 'com.atproto.repo.listRecords',
  type: 'query',
  auth: 'none',
  async handler({ ctx, params }) {
    const repo = params.requiredString('repo');
    const collection = params.requiredString('collection');
    const limit = params.integer('limit', { min: 1, max: 100 }) ?? 50;
    const cursor = params.string('cursor');
    const reverse = params.boolean('reverse') ?? false;
    const account = readableRepo(ctx.accountManager, repo);
    return withRepoErrors(() => {
      assertCollection(collection);
      const page = ctx.actorStore.listRecords(account.did, collection, { limit, cursor, reverse });
      return {
        json: {
          records: page.records,
          ...(page.cursor === undefined ? {} : { cursor: page.cursor }),
        },
      };
    });
  },
});
