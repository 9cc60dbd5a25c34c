import { writeOwnRepo } from '../../../../actor-store/repo-access.ts';
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
    const repo = requiredString(body, 'repo');
    const collection = requiredString(body, 'collection');
    const rkey = requiredString(body, 'rkey', { maxLength: 512 });
    const swapCommit = optionalString(body, 'swapCommit');
    const swapRecord = optionalString(body, 'swapRecord');
    const { commit } = await writeOwnRepo(ctx, auth.did, {
      repo,
      swapCommit,
      writes: () => [{ action: 'delete', collection, rkey, swapRecord }],
      nothingToWrite: (did) => {
        if (ctx.actorStore.getRecordCid(did, collection, rkey) !== undefined) return false;
        if (swapRecord) throw InvalidRequest('Record was at null', 'InvalidSwap');
        return true;
      },
    });
    return { json: commit ? { commit } : {} };
  },
});
