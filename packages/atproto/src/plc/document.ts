/**
 * Rendering a DID's PLC state as a W3C DID document, in the form the reference directory serves:
 * verification methods as `Multikey` (the did:key's multibase is the publicKeyMultibase), ids of
 * verification methods absolute (`did#atproto`), ids of services relative (`#atproto_pds`).
 */
import { parseDidKey } from '../crypto.ts';
import type { DidDocument } from '../identity/did-document.ts';
import type { PlcDocumentData } from './operations.ts';

const DID_CONTEXT = 'https://www.w3.org/ns/did/v1';
const MULTIKEY_CONTEXT = 'https://w3id.org/security/multikey/v1';
const SECP256K1_CONTEXT = 'https://w3id.org/security/suites/secp256k1-2019/v1';
const P256_CONTEXT = 'https://w3id.org/security/suites/ecdsa-2019/v1';
const DID_KEY_PREFIX = 'did:key:';

export type PlcDidDocument = DidDocument & { '@context': string[] };

export function plcDataToDidDocument(
  did: string,
  data: Pick<PlcDocumentData, 'rotationKeys' | 'verificationMethods' | 'alsoKnownAs' | 'services'>,
): PlcDidDocument {
  const context = [DID_CONTEXT, MULTIKEY_CONTEXT];
  const verificationMethod: NonNullable<DidDocument['verificationMethod']> = [];
  for (const [id, didKey] of Object.entries(data.verificationMethods)) {
    // The suite contexts are only advertised for the key types actually present; a key of a type
    // the crypto module does not know is still rendered (the spec allows any did:key here).
    let algorithm: string | undefined;
    try {
      algorithm = parseDidKey(didKey).algorithm;
    } catch {
      algorithm = undefined;
    }
    const suite = algorithm === 'secp256k1' ? SECP256K1_CONTEXT : algorithm === 'p256' ? P256_CONTEXT : undefined;
    if (suite && !context.includes(suite)) context.push(suite);
    verificationMethod.push({
      id: `${did}#${id}`,
      type: 'Multikey',
      controller: did,
      publicKeyMultibase: didKey.startsWith(DID_KEY_PREFIX) ? didKey.slice(DID_KEY_PREFIX.length) : didKey,
    });
  }
  const service: NonNullable<DidDocument['service']> = [];
  for (const [id, entry] of Object.entries(data.services)) {
    service.push({ id: `#${id}`, type: entry.type, serviceEndpoint: entry.endpoint });
  }
  return {
    '@context': context,
    id: did,
    alsoKnownAs: [...data.alsoKnownAs],
    verificationMethod,
    service,
  };
}
