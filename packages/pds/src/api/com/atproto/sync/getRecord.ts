import { writeCarBytes } from '@portage/atproto/car';
import { syncRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** A CAR proving a record's presence (or absence) against the signed current commit. */
export default xrpcMethod({
  nsid: 'com.atproto.sync.getRecord',
  type: 'query',
  auth: 'optionalAccessOrAdmin',
  async handler({ ctx, params, auth }) {
    const did = params.requiredString('did');
    const collection = params.requiredString('collection');
    const rkey = params.requiredString('rkey');
    syncRepo(ctx.accountManager, did, auth);
    return withRepoErrors(async () => {
      const proof = ctx.actorStore.getRecordProof(did, collection, rkey);
      return { body: await writeCarBytes([proof.root], proof.blocks), contentType: 'application/vnd.ipld.car' };
    });
  },
});
