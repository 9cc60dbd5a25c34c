import { InvalidRequest } from '../../../../xrpc/errors.ts';
import { xrpcMethod } from '../../../../xrpc/handler.ts';
import { inputObject, isJsonObject, type JsonObject, requiredString } from '../../../../xrpc/input.ts';
import type { PlcOperationChanges } from '../../../../migration/service.ts';

function stringArray(body: JsonObject, key: string): string[] | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw InvalidRequest(`Input/${key} must be an array of strings`);
  }
  return value;
}

function object<T>(body: JsonObject, key: string): Record<string, T> | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) throw InvalidRequest(`Input/${key} must be an object`);
  return value as Record<string, T>;
}

/**
 * Signs the DID's next PLC operation with this server's rotation key, given the emailed
 * token; fields left out keep their current values.
 */
export default xrpcMethod({
  nsid: 'com.atproto.identity.signPlcOperation',
  type: 'procedure',
  auth: 'accessFull',
  allowTakendown: true,
  async handler({ ctx, auth, input }) {
    const body = inputObject(input);
    const token = requiredString(body, 'token');
    const changes: PlcOperationChanges = {
      rotationKeys: stringArray(body, 'rotationKeys'),
      alsoKnownAs: stringArray(body, 'alsoKnownAs'),
      verificationMethods: object<string>(body, 'verificationMethods'),
      services: object<{ type: string; endpoint: string }>(body, 'services'),
    };
    const operation = await ctx.migration.signPlcOperation(auth.did, token, changes);
    return { json: { operation } };
  },
});
