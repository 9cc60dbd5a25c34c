/**
 * The parts of a DID document atproto uses (https://atproto.com/specs/did): the handle in
 * `alsoKnownAs`, the `#atproto` signing key and the `#atproto_pds` service. Lookups accept both
 * the relative (`#atproto`) and the absolute (`did:plc:...#atproto`) id forms, since both occur.
 */
import { didKeyFromVerificationMethod } from '../crypto.ts';
import { IdentityError } from './errors.ts';
import { normalizeServiceUrl } from './service-url.ts';

export { normalizeServiceUrl, sameServiceUrl } from './service-url.ts';

export interface DidVerificationMethod {
  id: string;
  type: string;
  controller: string;
  publicKeyMultibase: string;
}

export interface DidService {
  id: string;
  type: string;
  serviceEndpoint: string;
}

export interface DidDocument {
  '@context'?: unknown;
  id: string;
  alsoKnownAs?: string[];
  verificationMethod?: DidVerificationMethod[];
  service?: DidService[];
}

function matchesId(entryId: string, did: string, fragment: string): boolean {
  return entryId === fragment || entryId === `${did}${fragment}`;
}

/** The PDS URL from the `#atproto_pds` service, or undefined when the document names none. */
export function getPdsEndpoint(doc: DidDocument): string | undefined {
  const service = doc.service?.find(
    (s) => matchesId(s.id, doc.id, '#atproto_pds') && s.type === 'AtprotoPersonalDataServer',
  );
  if (!service || typeof service.serviceEndpoint !== 'string') return undefined;
  return normalizeServiceUrl(service.serviceEndpoint) === undefined ? undefined : service.serviceEndpoint;
}

/** The repo signing key (`#atproto` verification method) as a did:key, or undefined. */
export function getAtprotoSigningKey(doc: DidDocument): string | undefined {
  const method = doc.verificationMethod?.find((m) => matchesId(m.id, doc.id, '#atproto'));
  if (!method || typeof method.publicKeyMultibase !== 'string') return undefined;
  try {
    return didKeyFromVerificationMethod(method.type, method.publicKeyMultibase);
  } catch {
    return undefined;
  }
}

/** The handle the document claims (first `at://` entry of alsoKnownAs), or undefined. */
export function getHandle(doc: DidDocument): string | undefined {
  const aka = doc.alsoKnownAs?.find((name) => typeof name === 'string' && name.startsWith('at://'));
  return aka?.slice('at://'.length);
}

/**
 * Checks that a fetched JSON value is shaped like a DID document for `did` (the `id` must match:
 * a host serving someone else's document must not be believed) and returns it typed.
 */
export function parseDidDocument(value: unknown, did: string): DidDocument {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new IdentityError('InvalidDidDocument', `the DID document of ${did} is not a JSON object`);
  }
  const doc = value as Record<string, unknown>;
  if (doc.id !== did) {
    throw new IdentityError('InvalidDidDocument', `the DID document fetched for ${did} is about ${String(doc.id)}`);
  }
  for (const field of ['alsoKnownAs', 'verificationMethod', 'service'] as const) {
    if (doc[field] !== undefined && !Array.isArray(doc[field])) {
      throw new IdentityError('InvalidDidDocument', `the DID document of ${did} has a non-array "${field}"`);
    }
  }
  for (const entry of (doc.service as unknown[] | undefined) ?? []) {
    const s = entry as Record<string, unknown>;
    if (typeof entry !== 'object' || entry === null || typeof s.id !== 'string' || typeof s.type !== 'string') {
      throw new IdentityError('InvalidDidDocument', `the DID document of ${did} has a malformed service entry`);
    }
  }
  for (const entry of (doc.verificationMethod as unknown[] | undefined) ?? []) {
    const m = entry as Record<string, unknown>;
    if (typeof entry !== 'object' || entry === null || typeof m.id !== 'string' || typeof m.type !== 'string') {
      throw new IdentityError('InvalidDidDocument', `the DID document of ${did} has a malformed verification method`);
    }
  }
  return value as DidDocument;
}
