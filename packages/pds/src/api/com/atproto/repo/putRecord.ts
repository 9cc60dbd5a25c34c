import { formatCid, parseCid } from '@portage/atproto/cid';
import { prepareWrites } from '../../../../actor-store/prepare-writes.ts';
import { commitMeta, ownRepoDid } from '../../../../actor-store/repo-access.ts';
import { withRepoErrors } from '../../../../actor-store/xrpc-errors.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, optionalBoolean, optionalString, requiredString } from '../../../../xrpc/input.ts';

/** Writes a record at a given rkey: an update when one is there, else a create. */
export default xrpcMethod({
  nsid: 'com.atproto.repo.putRecord',
  type: 'procedure',
  auth: 'access',
  async handler({ ctx, input, auth }) {
    const body = inputObject(input);
    const did = ownRepoDid(ctx.accountManager, requiredString(body, 'repo'), auth.did);
    const collection = requiredString(body, 'collection');
    const rkey = requiredString(body, 'rkey', { maxLength: 512 });
    const validate = optionalBoolean(body, 'validate');
    const swapCommit = optionalString(body, 'swapCommit');
    // swapRecord: null means "must not exist yet"; absent means no check.
    const swapRecord = body.swapRecord === null ? null : optionalString(body, 'swapRecord');
    if (body.record === undefined) throw InvalidRequest('Input must have the property "record"');
    return withRepoErrors(async () => {
      const exists = ctx.actorStore.getRecordCid(did, collection, rkey) !== undefined;
      const writes = prepareWrites([
        exists
          ? { action: 'update', collection, rkey, record: body.record, validate, swapRecord }
          : { action: 'create', collection, rkey, record: body.record, validate },
      ]);
      if (!exists && swapRecord) throw InvalidRequest(`Record was at null`, 'InvalidSwap');
      const swap = swapCommit === undefined ? undefined : parseCid(swapCommit);
      const { commit, results } = await ctx.actorStore.applyWrites(did, writes, { swapCommit: swap });
      const written = results[0]!;
      return {
        json: {
          uri: written.uri,
          cid: formatCid(written.cid!),
          commit: commitMeta(commit),
          validationStatus: written.validationStatus,
        },
      };
    });
  },
});
