import { writeOwnRepo, writtenRecordView } from '../../../../actor-store/repo-access.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, optionalBoolean, optionalString, requiredString } from '../../../../xrpc/input.ts';

/** Creates one record (rkey defaults to a fresh TID) in the caller's repository. */
export default xrpcMethod({
  nsid: 'com.atproto.repo.createRecord',
  type: 'procedure',
  auth: 'access',
  async handler({ ctx, input, auth }) {
    const body = inputObject(input);
    const repo = requiredString(body, 'repo');
    const collection = requiredString(body, 'collection');
    const rkey = optionalString(body, 'rkey', { maxLength: 512 });
    const validate = optionalBoolean(body, 'validate');
    const swapCommit = optionalString(body, 'swapCommit');
    if (body.record === undefined) throw InvalidRequest('Input must have the property "record"');
    const written = await writeOwnRepo(ctx, auth.did, {
      repo,
      swapCommit,
      writes: () => [{ action: 'create', collection, rkey, record: body.record, validate }],
    });
    return { json: writtenRecordView(written) };
  },
});
