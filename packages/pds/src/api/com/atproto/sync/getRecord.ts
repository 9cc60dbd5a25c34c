import { ComAtprotoSyncGetRecord } from '@atcute/atproto';
import { writeCarBytes } from '@portage/atproto/car';
import { syncRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** A CAR proving a record's presence (or absence) against the signed current commit. */
export default xrpcMethod(ComAtprotoSyncGetRecord.mainSchema, {
  auth: 'optionalAccessOrAdmin',
  async handler({ ctx, params: { did, collection, rkey }, auth }) {
    syncRepo(ctx.accountManager, did, auth);
    return withRepoErrors(async () => {
      const proof = ctx.actorStore.getRecordProof(did, collection, rkey);
      return { body: await writeCarBytes([proof.root], proof.blocks), contentType: 'application/vnd.ipld.car' };
    });
  },
});
