import { writeCarBytes } from '@portage/atproto/car';
import { formatCid, parseCid } from '@portage/atproto/cid';
import { syncRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Repository blocks by CID, as a CAR with no roots; all of them or BlockNotFound. */
export default xrpcMethod({
  nsid: 'com.atproto.sync.getBlocks',
  type: 'query',
  auth: 'optionalAccessOrAdmin',
  async handler({ ctx, params, auth }) {
    const did = params.requiredString('did');
    const cidStrings = params.strings('cids', { maxItems: 1000 });
    syncRepo(ctx.accountManager, did, auth);
    return withRepoErrors(async () => {
      const { found, missing } = ctx.actorStore.getBlocks(did, cidStrings.map(parseCid));
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
