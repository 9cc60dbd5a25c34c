import { maxImportBytes } from '../../../../migration/repo-import.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { rawInputStream, xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * Imports a repository CAR (application/vnd.ipld.car), streamed and fully verified before it
 * replaces the account's repository. Up to PDS_MAX_REPO_IMPORT_SIZE (default 4 GiB).
 */
export default xrpcMethod({
  nsid: 'com.atproto.repo.importRepo',
  type: 'procedure',
  auth: 'accessFull',
  rawInput: true,
  maxInputBytes: (ctx) => maxImportBytes(ctx.config.maxRepoImportSize),
  async handler(c) {
    if (c.inputEncoding !== 'application/vnd.ipld.car') {
      throw InvalidRequest(
        `Wrong request encoding (Content-Type): ${c.inputEncoding ?? 'none'}; expected application/vnd.ipld.car`,
      );
    }
    await c.ctx.migration.importRepo(c.auth.did, rawInputStream(c));
  },
});
