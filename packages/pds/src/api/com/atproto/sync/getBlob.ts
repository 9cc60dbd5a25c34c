import { ComAtprotoSyncGetBlob } from '@atcute/atproto';
import { parseCid } from '@portage/atproto/cid';
import { syncRepo } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { type XrpcOutput, xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * A blob's bytes, streamed, with its recorded type and length. Blobs are user content served
 * from our origin, so the headers stop browsers from sniffing or running it. Behind a CDN
 * (PORTAGE_BLOBSTORE_CDN_URL) the answer is a redirect to the blob's key there instead.
 */
export default xrpcMethod(ComAtprotoSyncGetBlob.mainSchema, {
  auth: 'optionalAccessOrAdmin',
  allowTakendown: true,
  async handler({ ctx, params: { did, cid }, auth }) {
    syncRepo(ctx.accountManager, did, auth);
    return withRepoErrors(async (): Promise<XrpcOutput> => {
      const cdn = ctx.config.blobstoreCdnUrl;
      if (cdn) {
        // The same checks as a read (stored, committed, not taken down); the CDN serves the bytes.
        const info = ctx.actorStore.getBlobInfo(did, parseCid(cid));
        if (!info || info.temporary || info.takedownRef !== null)
          throw InvalidRequest('Blob not found', 'BlobNotFound');
        return { redirect: `${cdn}/blocks/${did}/${cid}`, headers: { 'Cache-Control': 'public, max-age=300' } };
      }
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
