import { xrpcMethod } from '../../../../xrpc/handler.ts';

/** Blobs the imported records reference that have not been uploaded yet, by CID. */
export default xrpcMethod({
  nsid: 'com.atproto.repo.listMissingBlobs',
  type: 'query',
  auth: 'access',
  async handler({ ctx, auth, params }) {
    const limit = params.integer('limit', { min: 1, max: 1000 }) ?? 500;
    const cursor = params.string('cursor');
    const page = await ctx.migration.listMissingBlobs(auth.did, { limit, cursor });
    return { json: { blobs: page.blobs, ...(page.cursor !== undefined ? { cursor: page.cursor } : {}) } };
  },
});
