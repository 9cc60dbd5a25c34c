import { normalizeHandle } from '../../../../account/handles.ts';
import { resolveHandleToDid } from '../../../../identity/handles.ts';
import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';

export default xrpcMethod({
  nsid: 'com.atproto.identity.resolveHandle',
  type: 'query',
  auth: 'none',
  async handler({ ctx, params }) {
    const handle = normalizeHandle(params.requiredString('handle'));
    const did = await resolveHandleToDid(ctx, handle);
    if (!did) throw InvalidRequest('Unable to resolve handle', 'HandleNotFound');
    return { json: { did } };
  },
});
