import { ComAtprotoRepoApplyWrites } from '@atcute/atproto';
import { formatCid } from '@portage/atproto/cid';
import { MAX_WRITES_PER_COMMIT, type WriteRequest } from '../../../../actor-store/prepare-writes.ts';
import { WRITE_POINTS } from '../../../../rate-limit/rate-limiter.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { repoWriteMethod } from '../../../repo-write.ts';

const PREFIX = 'com.atproto.repo.applyWrites#';

type Write = ComAtprotoRepoApplyWrites.$input['writes'][number];

function writeRequest(write: Write, validate: boolean | undefined): WriteRequest {
  switch (write.$type) {
    case `${PREFIX}create`:
      return { action: 'create', collection: write.collection, rkey: write.rkey, record: write.value, validate };
    case `${PREFIX}update`:
      return { action: 'update', collection: write.collection, rkey: write.rkey, record: write.value, validate };
    default:
      return { action: 'delete', collection: write.collection, rkey: write.rkey };
  }
}

function writePoints(write: Write): number {
  if (write.$type === `${PREFIX}create`) return WRITE_POINTS.create;
  if (write.$type === `${PREFIX}update`) return WRITE_POINTS.update;
  return WRITE_POINTS.delete;
}

/** Up to 200 creates, updates and deletes as one commit: all of them or none. */
export default repoWriteMethod(ComAtprotoRepoApplyWrites.mainSchema, {
  points: ({ writes }) => writes.reduce((sum, write) => sum + writePoints(write), 0),
  writes({ writes, validate }) {
    if (writes.length > MAX_WRITES_PER_COMMIT) {
      throw InvalidRequest(`Too many writes. Max: ${MAX_WRITES_PER_COMMIT}`);
    }
    return writes.map((write) => writeRequest(write, validate));
  },
  output: ({ commit, results }) => ({
    commit,
    results: results.map((r) =>
      r.action === 'delete'
        ? { $type: `${PREFIX}deleteResult` }
        : {
            $type: `${PREFIX}${r.action}Result`,
            uri: r.uri,
            cid: formatCid(r.cid!),
            validationStatus: r.validationStatus,
          },
    ),
  }),
});
