import { formatCid, parseCid } from '@portage/atproto/cid';
import { prepareWrites } from '../../../../actor-store/prepare-writes.ts';
import { commitMeta, ownRepoDid } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, optionalBoolean, optionalString, requiredString } from '../../../../xrpc/input.ts';

/** Creates one record (rkey defaults to a fresh TID) in the caller's repository. */
export default xrpcMethod({
  nsid: 'com.atproto.repo.createRecord',
  type: 'procedure',
  auth: 'access',
  async handler({ ctx, input, auth }) {
    const body = inputObject(input);
    const did = ownRepoDid(ctx.accountManager, requiredString(body, 'repo'), auth.did);
    const collection = requiredString(body, 'collection');
    const rkey = optionalString(body, 'rkey', { maxLength: 512 });
    const validate = optionalBoolean(body, 'validate');
    const swapCommit = optionalString(body, 'swapCommit');
    if (body.record === undefined) throw InvalidRequest('Input must have the property "record"');
    return withRepoErrors(async () => {
      const writes = prepareWrites([{ action: 'create', collection, rkey, record: body.record, validate }]);
      const swap = swapCommit === undefined ? undefined : parseCid(swapCommit);
      const { commit, results } = await ctx.actorStore.applyWrites(did, writes, { swapCommit: swap });
      const created = results[0]!;
      return {
        json: {
          uri: created.uri,
          cid: formatCid(created.cid!),
          commit: commitMeta(commit),
          validationStatus: created.validationStatus,
        },
      };
    });
  },
});
