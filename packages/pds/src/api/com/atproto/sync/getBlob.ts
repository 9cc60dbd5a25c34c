import { ComAtprotoSyncGetBlob } from '@atcute/atproto';
import { parseCid } from '@portage/atproto/cid';
import { syncRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * A blob's bytes, streamed, with its recorded type and length. Blobs are user content served
 * from our origin, so the headers stop browsers from sniffing or running it.
 */
export default xrpcMethod(ComAtprotoSyncGetBlob.mainSchema, {
  auth: 'optionalAccessOrAdmin',
  allowTakendown: true,
  async handler({ ctx, params: { did, cid }, auth }) {
    syncRepo(ctx.accountManager, did, auth);
    return withRepoErrors(async () => {
      const blob = await ctx.actorStore.readBlob(did, parseCid(cid));
      if (!blob) throw InvalidRequest('Blob not found', 'BlobNotFound');
      return {
        body: blob.stream,
        contentType: blob.mimeType,
        headers: {
          'Content-Length': String(blob.size),
          'x-content-type-options': 'nosniff',
          'content-security-policy': "default-src 'none'; sandbox",
        },
      };
    });
  },
});
