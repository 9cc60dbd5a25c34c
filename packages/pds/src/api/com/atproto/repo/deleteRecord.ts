import { formatCid, parseCid } from '@portage/atproto/cid';
import { prepareWrites } from '../../../../actor-store/prepare-writes.ts';
import { commitMeta, ownRepoDid } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, optionalString, requiredString } from '../../../../xrpc/input.ts';

/** Deletes a record. Deleting a record that is not there is a no-op (no commit), as in the reference. */
export default xrpcMethod({
  nsid: 'com.atproto.repo.deleteRecord',
  type: 'procedure',
  auth: 'access',
  async handler({ ctx, input, auth }) {
    const body = inputObject(input);
    const did = ownRepoDid(ctx.accountManager, requiredString(body, 'repo'), auth.did);
    const collection = requiredString(body, 'collection');
    const rkey = requiredString(body, 'rkey', { maxLength: 512 });
    const swapCommit = optionalString(body, 'swapCommit');
    const swapRecord = optionalString(body, 'swapRecord');
    return withRepoErrors(async () => {
      const writes = prepareWrites([{ action: 'delete', collection, rkey, swapRecord }]);
      const swap = swapCommit === undefined ? undefined : parseCid(swapCommit);
      if (ctx.actorStore.getRecordCid(did, collection, rkey) === undefined) {
        if (swapRecord) throw InvalidRequest('Record was at null', 'InvalidSwap');
        const root = ctx.actorStore.getRoot(did);
        if (swap && root && formatCid(swap) !== formatCid(root.cid)) {
          throw InvalidRequest(`Commit was at ${formatCid(root.cid)}`, 'InvalidSwap');
        }
        return { json: {} };
      }
      const { commit } = await ctx.actorStore.applyWrites(did, writes, { swapCommit: swap });
      return { json: { commit: commitMeta(commit) } };
    });
  },
});
