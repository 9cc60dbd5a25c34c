import { writeOwnRepo, writtenRecordView } from '../../../../actor-store/repo-access.ts';
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
    const repo = requiredString(body, 'repo');
    const collection = requiredString(body, 'collection');
    const rkey = requiredString(body, 'rkey', { maxLength: 512 });
    const validate = optionalBoolean(body, 'validate');
    const swapCommit = optionalString(body, 'swapCommit');
    // swapRecord: null means "must not exist yet"; absent means no check.
    const swapRecord = body.swapRecord === null ? null : optionalString(body, 'swapRecord');
    if (body.record === undefined) throw InvalidRequest('Input must have the property "record"');
    const written = await writeOwnRepo(ctx, auth.did, {
      repo,
      swapCommit,
      writes: (did) => {
        if (ctx.actorStore.getRecordCid(did, collection, rkey) !== undefined) {
          return [{ action: 'update', collection, rkey, record: body.record, validate, swapRecord }];
        }
        if (swapRecord) throw InvalidRequest('Record was at null', 'InvalidSwap');
        return [{ action: 'create', collection, rkey, record: body.record, validate }];
      },
    });
    return { json: writtenRecordView(written) };
  },
});
