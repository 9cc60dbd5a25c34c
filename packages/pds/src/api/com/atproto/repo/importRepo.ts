import { ComAtprotoRepoImportRepo } from '@atcute/atproto';
import { maxImportBytes } from '../../../../migration/repo-import.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * Imports a repository CAR (application/vnd.ipld.car), streamed and fully verified before it
 * replaces the account's repository. Up to PDS_MAX_REPO_IMPORT_SIZE (default 4 GiB).
 */
export default xrpcMethod(ComAtprotoRepoImportRepo.mainSchema, {
  auth: 'accessFull',
  maxInputBytes: (ctx) => maxImportBytes(ctx.config.maxRepoImportSize),
  async handler({ ctx, auth, input, inputEncoding }) {
    if (inputEncoding !== 'application/vnd.ipld.car') {
      throw InvalidRequest(
        `Wrong request encoding (Content-Type): ${inputEncoding ?? 'none'}; expected application/vnd.ipld.car`,
      );
    }
    await ctx.migration.importRepo(auth.did, input);
  },
});
