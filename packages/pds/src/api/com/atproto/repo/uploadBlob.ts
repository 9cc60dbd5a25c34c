import { ComAtprotoRepoUploadBlob } from '@atcute/atproto';
import { formatCid } from '@portage/atproto/cid';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * Streams an upload to a temporary blob (hashing, size limit and type sniffing on the way).
 * It becomes part of the repository when a record referencing it is committed.
 */
export default xrpcMethod(ComAtprotoRepoUploadBlob.mainSchema, {
  auth: 'access',
  rateLimit: [{ policy: 'uploadBlob', key: ({ ip }) => ip }],
  maxInputBytes: (ctx) => ctx.config.blobUploadLimit,
  async handler({ ctx, auth, input, inputEncoding }) {
    return withRepoErrors(async () => {
      const blob = await ctx.actorStore.uploadBlob(
        auth.did,
        input,
        inputEncoding && inputEncoding !== '*/*' ? inputEncoding : undefined,
        ctx.config.blobUploadLimit,
      );
      return {
        json: {
          blob: { $type: 'blob', ref: { $link: formatCid(blob.cid) }, mimeType: blob.mimeType, size: blob.size },
        },
      };
    });
  },
});
