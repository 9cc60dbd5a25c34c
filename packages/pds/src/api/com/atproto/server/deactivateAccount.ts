import { isValidDatetime } from '@portage/atproto/syntax/datetime';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { isJsonObject, optionalString } from '../../../../xrpc/input.ts';

/** Deactivates the account (after moving away); the owner can still sign in and read. */
export default xrpcMethod({
  nsid: 'com.atproto.server.deactivateAccount',
  type: 'procedure',
  auth: 'accessFull',
  allowTakendown: true,
  async handler({ ctx, auth, input }) {
    const body = input === undefined ? {} : input;
    if (!isJsonObject(body)) throw InvalidRequest('Input must be an object');
    const deleteAfter = optionalString(body, 'deleteAfter');
    if (deleteAfter !== undefined && !isValidDatetime(deleteAfter)) {
      throw InvalidRequest('Input/deleteAfter must be a valid datetime');
    }
    await ctx.migration.deactivateAccount(auth.did, deleteAfter ?? null);
  },
});
