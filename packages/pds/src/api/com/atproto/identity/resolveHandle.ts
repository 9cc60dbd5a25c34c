import { ComAtprotoIdentityResolveHandle } from '@atcute/atproto';
import { normalizeHandle } from '../../../../account/handles.ts';
import { resolveHandleToDid } from '../../../../identity/handles.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

export default xrpcMethod(ComAtprotoIdentityResolveHandle.mainSchema, {
  auth: 'none',
  async handler({ ctx, params }) {
    const did = await resolveHandleToDid(ctx, normalizeHandle(params.handle));
    if (!did) throw InvalidRequest('Unable to resolve handle', 'HandleNotFound');
    return { json: { did } };
  },
});
