import { ComAtprotoIdentitySignPlcOperation } from '@atcute/atproto';
import type { PlcOperationChanges } from '../../../../migration/service.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

/**
 * Signs the DID's next PLC operation with this server's rotation key, given the emailed
 * token; fields left out keep their current values.
 */
export default xrpcMethod(ComAtprotoIdentitySignPlcOperation.mainSchema, {
  auth: 'accessFull',
  allowTakendown: true,
  async handler({ ctx, auth, input: { token, ...changes } }) {
    // Optional in the lexicon, but nothing is signed without the emailed token.
    if (!token) throw InvalidRequest('email confirmation token required to sign PLC operations');
    const operation = await ctx.migration.signPlcOperation(auth.did, token, changes as PlcOperationChanges);
    return { json: { operation } };
  },
});
