import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, optionalString, requiredInteger } from '../../../../xrpc/input.ts';

/** Admin only. `forAccount` defaults to "admin", as in the reference. */
export default xrpcMethod({
  nsid: 'com.atproto.server.createInviteCode',
  type: 'procedure',
  auth: 'admin',
  async handler({ ctx, input }) {
    const body = inputObject(input);
    const useCount = requiredInteger(body, 'useCount', { min: 1, max: 10_000 });
    const forAccount = optionalString(body, 'forAccount') ?? 'admin';
    const [created] = ctx.accountManager.createInviteCodes({
      forAccounts: [forAccount],
      count: 1,
      useCount,
      createdBy: 'admin',
    });
    return { json: { code: created!.codes[0] } };
  },
});
