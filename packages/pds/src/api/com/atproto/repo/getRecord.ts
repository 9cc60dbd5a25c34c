import { ComAtprotoRepoGetRecord } from '@atcute/atproto';
import { parseCid } from '@portage/atproto/cid';
import { readableRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** One record, optionally at a given version (`cid`). */
export default xrpcMethod(ComAtprotoRepoGetRecord.mainSchema, {
  auth: 'none',
  async handler({ ctx, params: { repo, collection, rkey, cid } }) {
    const account = readableRepo(ctx.accountManager, repo);
    return withRepoErrors(() => {
      const record = ctx.actorStore.getRecord(
        account.did,
        collection,
        rkey,
        cid === undefined ? undefined : parseCid(cid),
      );
      // A taken-down record reads as absent, in the reference's words.
      if (!record || record.takedownRef !== undefined) {
        throw InvalidRequest(`Could not locate record: at://${account.did}/${collection}/${rkey}`, 'RecordNotFound');
      }
      return { json: { uri: record.uri, cid: record.cid, value: record.value } };
    });
  },
});
