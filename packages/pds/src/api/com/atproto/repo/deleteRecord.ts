import { ComAtprotoRepoDeleteRecord } from '@atcute/atproto';
import { WRITE_POINTS } from '../../../../rate-limit/rate-limiter.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { repoWriteMethod } from '../../../repo-write.ts';

/** Deletes a record. Deleting a record that is not there is a no-op (no commit), as in the reference. */
export default repoWriteMethod(ComAtprotoRepoDeleteRecord.mainSchema, {
  points: () => WRITE_POINTS.delete,
  writes: ({ collection, rkey, swapRecord }) => [{ action: 'delete', collection, rkey, swapRecord }],
  nothingToWrite({ collection, rkey, swapRecord }, did, ctx) {
    if (ctx.actorStore.getRecordCid(did, collection, rkey) !== undefined) return false;
    if (swapRecord) throw InvalidRequest('Record was at null', 'InvalidSwap');
    return true;
  },
  output: ({ commit }) => (commit ? { commit } : {}),
});
