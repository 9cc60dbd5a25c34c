import { ComAtprotoRepoPutRecord } from '@atcute/atproto';
import { writtenRecordView } from '../../../../actor-store/repo-access.ts';
import { WRITE_POINTS } from '../../../../rate-limit/rate-limiter.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { repoWriteMethod } from '../../../repo-write.ts';

/** Writes a record at a given rkey: an update when one is there, else a create. */
export default repoWriteMethod(ComAtprotoRepoPutRecord.mainSchema, {
  points: () => WRITE_POINTS.update,
  writes({ collection, rkey, record, validate, swapRecord }, did, ctx) {
    // swapRecord: null means "must not exist yet"; absent means no check.
    if (ctx.actorStore.getRecordCid(did, collection, rkey) !== undefined) {
      return [{ action: 'update', collection, rkey, record, validate, swapRecord }];
    }
    if (swapRecord) throw InvalidRequest('Record was at null', 'InvalidSwap');
    return [{ action: 'create', collection, rkey, record, validate }];
  },
  output: writtenRecordView,
});
