import { ComAtprotoRepoListMissingBlobs } from '@atcute/atproto';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Blobs the imported records reference that have not been uploaded yet, by CID. */
export default xrpcMethod(ComAtprotoRepoListMissingBlobs.mainSchema, {
  auth: 'access',
  async handler({ ctx, auth, params }) {
    const page = await ctx.migration.listMissingBlobs(auth.did, params);
    return { json: { blobs: page.blobs, ...(page.cursor !== undefined ? { cursor: page.cursor } : {}) } };
  },
});
