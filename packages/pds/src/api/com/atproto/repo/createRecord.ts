import { ComAtprotoRepoCreateRecord } from '@atcute/atproto';
import { writtenRecordView } from '../../../../actor-store/repo-access.ts';
import { WRITE_POINTS } from '../../../../rate-limit/rate-limiter.ts';
import { repoWriteMethod } from '../../../repo-write.ts';

/** Creates one record (rkey defaults to a fresh TID) in the caller's repository. */
export default repoWriteMethod(ComAtprotoRepoCreateRecord.mainSchema, {
  points: () => WRITE_POINTS.create,
  writes: ({ collection, rkey, record, validate }) => [{ action: 'create', collection, rkey, record, validate }],
  output: writtenRecordView,
});
