import { ComAtprotoSyncGetBlocks } from '@atcute/atproto';
import { writeCarBytes } from '@portage/atproto/car';
import { formatCid, parseCid } from '@portage/atproto/cid';
import { syncRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

const MAX_CIDS = 1000;

/** Repository blocks by CID, as a CAR with no roots; all of them or BlockNotFound. */
export default xrpcMethod(ComAtprotoSyncGetBlocks.mainSchema, {
  auth: 'optionalAccessOrAdmin',
  async handler({ ctx, nsid, params: { did, cids }, auth }) {
    // Not in the lexicon: a bound on what one request may make us read.
    if (cids.length > MAX_CIDS) {
      throw InvalidRequest(`Invalid ${nsid} params: array too big (maximum ${MAX_CIDS}, got ${cids.length})`);
    }
    syncRepo(ctx.accountManager, did, auth);
    return withRepoErrors(async () => {
      const { found, missing } = ctx.actorStore.getBlocks(did, cids.map(parseCid));
      if (missing.length > 0) {
        throw InvalidRequest(`Could not find cids: ${missing.map(formatCid).join(', ')}`, 'BlockNotFound');
      }
      const car = await writeCarBytes(
        [],
        found.map(([cid, bytes]) => ({ cid, bytes })),
      );
      return { body: car, contentType: 'application/vnd.ipld.car' };
    });
  },
});
