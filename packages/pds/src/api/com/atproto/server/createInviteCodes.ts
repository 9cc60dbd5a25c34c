import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, optionalInteger, optionalStringArray, requiredInteger } from '../../../../xrpc/input.ts';

/** Admin only: `codeCount` codes for each of `forAccounts` (default: one batch for "admin"). */
export default xrpcMethod({
  nsid: 'com.atproto.server.createInviteCodes',
  type: 'procedure',
  auth: 'admin',
  async handler({ ctx, input }) {
    const body = inputObject(input);
    const codeCount = optionalInteger(body, 'codeCount', { min: 1, max: 1000 }) ?? 1;
    const useCount = requiredInteger(body, 'useCount', { min: 1, max: 10_000 });
    const forAccounts = optionalStringArray(body, 'forAccounts', { maxItems: 1000 }) ?? ['admin'];
    if (forAccounts.length * codeCount > 10_000) throw InvalidRequest('Too many codes requested at once (max 10000)');
    const codes = ctx.accountManager.createInviteCodes({ forAccounts, count: codeCount, useCount, createdBy: 'admin' });
    return { json: { codes } };
  },
});
