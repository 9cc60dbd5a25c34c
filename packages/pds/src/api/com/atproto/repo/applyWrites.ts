import { formatCid } from '@portage/atproto/cid';
import { MAX_WRITES_PER_COMMIT, type WriteRequest } from '../../../../actor-store/prepare-writes.ts';
import { writeOwnRepo } from '../../../../actor-store/repo-access.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import {
  inputObject,
  isJsonObject,
  optionalBoolean,
  optionalString,
  requiredArray,
  requiredString,
} from '../../../../xrpc/input.ts';

const PREFIX = 'com.atproto.repo.applyWrites#';

function parseWrite(value: unknown, i: number, validate: boolean | undefined): WriteRequest {
  if (!isJsonObject(value)) throw InvalidRequest(`Input/writes/${i} must be an object`);
  const collection = value.collection;
  const rkey = value.rkey;
  if (typeof collection !== 'string') throw InvalidRequest(`Input/writes/${i} must have the property "collection"`);
  if (rkey !== undefined && typeof rkey !== 'string') throw InvalidRequest(`Input/writes/${i}/rkey must be a string`);
  switch (value.$type) {
    case `${PREFIX}create`:
      if (value.value === undefined) throw InvalidRequest(`Input/writes/${i} must have the property "value"`);
      return { action: 'create', collection, rkey, record: value.value, validate };
    case `${PREFIX}update`:
      if (rkey === undefined) throw InvalidRequest(`Input/writes/${i} must have the property "rkey"`);
      if (value.value === undefined) throw InvalidRequest(`Input/writes/${i} must have the property "value"`);
      return { action: 'update', collection, rkey, record: value.value, validate };
    case `${PREFIX}delete`:
      if (rkey === undefined) throw InvalidRequest(`Input/writes/${i} must have the property "rkey"`);
      return { action: 'delete', collection, rkey };
    default:
      throw InvalidRequest(
        `Input/writes/${i} must be an object which includes the "$type" property (create, update or delete)`,
      );
  }
}

/** Up to 200 creates, updates and deletes as one commit: all of them or none. */
export default xrpcMethod({
  nsid: 'com.atproto.repo.applyWrites',
  type: 'procedure',
  auth: 'access',
  async handler({ ctx, input, auth }) {
    const body = inputObject(input);
    const repo = requiredString(body, 'repo');
    const validate = optionalBoolean(body, 'validate');
    const swapCommit = optionalString(body, 'swapCommit');
    const rawWrites = requiredArray(body, 'writes', { maxItems: MAX_WRITES_PER_COMMIT });
    const requests = rawWrites.map((w, i) => parseWrite(w, i, validate));
    const { commit, results } = await writeOwnRepo(ctx, auth.did, { repo, swapCommit, writes: () => requests });
    return {
      json: {
        commit,
        results: results.map((r) =>
          r.action === 'delete'
            ? { $type: `${PREFIX}deleteResult` }
            : {
                $type: `${PREFIX}${r.action}Result`,
                uri: r.uri,
                cid: formatCid(r.cid!),
                validationStatus: r.validationStatus,
              },
        ),
      },
    };
  },
});
