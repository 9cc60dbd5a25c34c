import { parseCid } from '@portage/atproto/cid';
import { readableRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** One record, optionally at a given version (`cid`). */
export default xrpcMethod({
  nsid: 'com.atproto.repo.getRecord',
  type: 'query',
  auth: 'none',
  async handler({ ctx, params }) {
    const repo = params.requiredString('repo');
    const collection = params.requiredString('collection');
    const rkey = params.requiredString('rkey');
    const cidParam = params.string('cid');
    const account = readableRepo(ctx.accountManager, repo);
    return withRepoErrors(() => {
      const cid = cidParam === undefined ? undefined : parseCid(cidParam);
      const record = ctx.actorStore.getRecord(account.did, collection, rkey, cid);
      if (!record) {
        throw InvalidRequest(`Could not locate record: at://${account.did}/${collection}/${rkey}`, 'RecordNotFound');
      }
      return { json: { uri: record.uri, cid: record.cid, value: record.value } };
    });
  },
});
