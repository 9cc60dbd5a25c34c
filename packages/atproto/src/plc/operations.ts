/**
 * did:plc operations (https://web.plc.directory/spec/v0.1/did-plc): their shapes, DAG-CBOR encoding,
 * signatures, CIDs and the DID a genesis operation defines. Everything here is about one operation
 * on its own; how operations chain into a DID's log is rules.ts.
 *
 * Three operation formats exist: the regular `plc_operation`, the `plc_tombstone` that ends a DID,
 * and the deprecated `create` format, which only ever appears as the genesis operation of old DIDs
 * (read support only: the DIDs derived from it must keep verifying).
 */
import { encode } from '@atcute/cbor';
import { fromBase64Url, toBase32, toBase64Url } from '@atcute/multibase';
import { cidForCbor, formatCid, sha256 } from '../cid.ts';
import { parseDidKey, type SigningKey, verifySignature } from '../crypto.ts';
import { PlcError } from './errors.ts';

export { PlcError } from './errors.ts';

export interface PlcService {
  type: string;
  endpoint: string;
}

export interface UnsignedPlcOperation {
  type: 'plc_operation';
  rotationKeys: string[];
  verificationMethods: Record<string, string>;
  alsoKnownAs: string[];
  services: Record<string, PlcService>;
  prev: string | null;
}

export interface PlcOperation extends UnsignedPlcOperation {
  sig: string;
}

export interface UnsignedPlcTombstone {
  type: 'plc_tombstone';
  prev: string;
}

export interface PlcTombstone extends UnsignedPlcTombstone {
  sig: string;
}

/** The deprecated genesis format (read support only: audit logs of old DIDs start with it). */
export interface UnsignedLegacyCreateOperation {
  type: 'create';
  signingKey: string;
  recoveryKey: string;
  handle: string;
  service: string;
  prev: null;
}

export interface LegacyCreateOperation extends UnsignedLegacyCreateOperation {
  sig: string;
}

/** Any signed operation that can appear in a DID's log. */
export type AnyPlcOperation = PlcOperation | PlcTombstone | LegacyCreateOperation;

/** The state of a DID as its latest operation defines it (what GET /{did}/data serves). */
export interface PlcDocumentData {
  did: string;
  rotationKeys: string[];
  verificationMethods: Record<string, string>;
  alsoKnownAs: string[];
  services: Record<string, PlcService>;
}

/** Limits from the spec and the reference directory, enforced on every operation submitted. */
export const PLC_LIMITS = {
  /** Maximum size of a signed operation in DAG-CBOR. */
  maxOperationBytes: 7500,
  minRotationKeys: 1,
  maxRotationKeys: 5,
  maxAlsoKnownAs: 10,
  maxAlsoKnownAsLength: 256,
  maxVerificationMethods: 10,
  maxServices: 10,
  maxServiceTypeLength: 256,
  maxServiceEndpointLength: 512,
  /** Maximum length of a verification method or service id (the map keys). */
  maxIdLength: 32,
} as const;

const SIGNATURE_BYTES = 64;
const DID_KEY_PREFIX = 'did:key:';
const DID_PLC_PATTERN = /^did:plc:[a-z2-7]{24}$/;
const BASE58BTC_CHARS = /^[1-9A-HJ-NP-Za-km-z]+$/;
const BASE64URL_CHARS = /^[A-Za-z0-9_-]+$/;
const CID_STRING = /^b[a-z2-7]+$/;

/** True for a syntactically valid did:plc (24 lowercase base32 characters). */
export function isPlcDid(did: unknown): did is string {
  return typeof did === 'string' && DID_PLC_PATTERN.test(did);
}

// ---- encoding, hashing, signatures ----

/**
 * The DAG-CBOR bytes of an operation exactly as given (with `sig` if present). Objects are
 * rebuilt field by field elsewhere so that no stray property ever reaches the encoder.
 */
export function encodePlcOperation(op: AnyPlcOperation | UnsignedPlcOperation | UnsignedPlcTombstone): Uint8Array {
  return encode(op);
}

/** The bytes a signature covers: the operation encoded without its `sig` field at all. */
export function plcSigningBytes(op: AnyPlcOperation | UnsignedPlcOperation | UnsignedPlcTombstone): Uint8Array {
  const { sig: _sig, ...unsigned } = op as AnyPlcOperation;
  return encode(unsigned);
}

/** CID (CIDv1, dag-cbor, sha-256, base32 string) of a signed operation: what `prev` points at. */
export function cidForPlcOperation(op: AnyPlcOperation): string {
  return formatCid(cidForCbor(encodePlcOperation(op)));
}

/** The DID a (signed) genesis operation defines: base32 of sha256 of its DAG-CBOR, first 24 chars. */
export function didForGenesisOperation(op: PlcOperation | LegacyCreateOperation): string {
  return `did:plc:${toBase32(sha256(encodePlcOperation(op))).slice(0, 24)}`;
}

function stripUnsignedOperation(op: UnsignedPlcOperation): UnsignedPlcOperation {
  const services: Record<string, PlcService> = {};
  for (const [id, service] of Object.entries(op.services)) {
    services[id] = { type: service.type, endpoint: service.endpoint };
  }
  return {
    type: 'plc_operation',
    rotationKeys: [...op.rotationKeys],
    verificationMethods: { ...op.verificationMethods },
    alsoKnownAs: [...op.alsoKnownAs],
    services,
    prev: op.prev,
  };
}

/** Signs an operation with a rotation key: base64url (no padding) of the 64-byte low-S signature. */
export async function signPlcOperation(op: UnsignedPlcOperation, rotationKey: SigningKey): Promise<PlcOperation> {
  const unsigned = stripUnsignedOperation(op);
  const sig = await rotationKey.sign(encode(unsigned));
  return { ...unsigned, sig: toBase64Url(sig) };
}

/** A tombstone: ends the DID (subject to the recovery window) once the directory accepts it. */
export async function createTombstone(prev: string, rotationKey: SigningKey): Promise<PlcTombstone> {
  const unsigned: UnsignedPlcTombstone = { type: 'plc_tombstone', prev };
  const sig = await rotationKey.sign(encode(unsigned));
  return { ...unsigned, sig: toBase64Url(sig) };
}

/**
 * Decodes a `sig` strictly: unpadded base64url of exactly 64 bytes, and canonical, i.e. it
 * re-encodes to the same string (non-zero trailing bits would give the same bytes under another
 * spelling, hence another CID for the same signed content). Returns undefined when malformed.
 */
export function decodePlcSignature(sig: string): Uint8Array | undefined {
  if (typeof sig !== 'string' || !BASE64URL_CHARS.test(sig)) return undefined;
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(sig);
  } catch {
    return undefined;
  }
  if (bytes.length !== SIGNATURE_BYTES || toBase64Url(bytes) !== sig) return undefined;
  return bytes;
}

/**
 * Which of `allowedKeys` signed the operation, or undefined when none did (or the signature is
 * malformed). Keys are tried in order, so the answer is the highest-priority key that verifies.
 */
export async function findPlcSigner(op: AnyPlcOperation, allowedKeys: readonly string[]): Promise<string | undefined> {
  const sig = decodePlcSignature(op.sig);
  if (!sig) return undefined;
  const data = plcSigningBytes(op);
  for (const key of allowedKeys) {
    let ok: boolean;
    try {
      ok = await verifySignature(key, data, sig);
    } catch {
      ok = false; // a rotation key the crypto module cannot use never verifies anything
    }
    if (ok) return key;
  }
  return undefined;
}

// ---- building operations ----

/** The genesis operation of a new atproto account, and the DID it defines. */
export async function createGenesisOperation(args: {
  signingKeyDid: string;
  rotationKeys: string[];
  handle: string;
  pdsEndpoint: string;
  rotationKey: SigningKey;
}): Promise<{ did: string; operation: PlcOperation }> {
  const operation = await signPlcOperation(
    {
      type: 'plc_operation',
      rotationKeys: args.rotationKeys,
      verificationMethods: { atproto: args.signingKeyDid },
      alsoKnownAs: [ensureAtUri(args.handle)],
      services: { atproto_pds: { type: 'AtprotoPersonalDataServer', endpoint: args.pdsEndpoint } },
      prev: null,
    },
    args.rotationKey,
  );
  assertValidPlcOperation(operation);
  return { did: didForGenesisOperation(operation), operation };
}

/**
 * The next operation after `last` (whose CID is `lastCid`): `last`'s state with `changes` applied,
 * signed by `rotationKey`. `last` may be in the legacy format; it is normalized first.
 */
export async function updateOperation(
  last: PlcOperation | LegacyCreateOperation,
  lastCid: string,
  changes: Partial<UnsignedPlcOperation>,
  rotationKey: SigningKey,
): Promise<PlcOperation> {
  const base = normalizePlcOperation(last);
  const operation = await signPlcOperation(
    {
      type: 'plc_operation',
      rotationKeys: changes.rotationKeys ?? base.rotationKeys,
      verificationMethods: changes.verificationMethods ?? base.verificationMethods,
      alsoKnownAs: changes.alsoKnownAs ?? base.alsoKnownAs,
      services: changes.services ?? base.services,
      prev: lastCid,
    },
    rotationKey,
  );
  assertValidPlcOperation(operation);
  return operation;
}

/** `at://handle` for a bare handle; leaves an existing at:// URI alone. */
function ensureAtUri(handle: string): string {
  if (handle.startsWith('at://')) return handle;
  return `at://${handle.replace(/^https?:\/\//, '')}`;
}

function ensureHttpUrl(url: string): string {
  if (url.startsWith('https://') || url.startsWith('http://')) return url;
  return `https://${url}`;
}

/**
 * The regular-format view of an operation. A legacy `create` becomes the operation it is
 * equivalent to (recovery key first, as it had priority); its `sig` is kept only for reference,
 * since it signs the legacy bytes, not these.
 */
export function normalizePlcOperation(op: PlcOperation | LegacyCreateOperation): PlcOperation {
  if (op.type === 'plc_operation') return op;
  return {
    type: 'plc_operation',
    rotationKeys: [op.recoveryKey, op.signingKey],
    verificationMethods: { atproto: op.signingKey },
    alsoKnownAs: [ensureAtUri(op.handle)],
    services: { atproto_pds: { type: 'AtprotoPersonalDataServer', endpoint: ensureHttpUrl(op.service) } },
    prev: null,
    sig: op.sig,
  };
}

/** The document data an operation leaves the DID in, or null for a tombstone. */
export function plcDataForOperation(did: string, op: AnyPlcOperation): PlcDocumentData | null {
  if (op.type === 'plc_tombstone') return null;
  const normalized = normalizePlcOperation(op);
  return {
    did,
    rotationKeys: normalized.rotationKeys,
    verificationMethods: normalized.verificationMethods,
    alsoKnownAs: normalized.alsoKnownAs,
    services: normalized.services,
  };
}

/** The rotation keys allowed to sign the operation that follows `op` (none after a tombstone). */
export function rotationKeysOf(op: AnyPlcOperation): string[] {
  if (op.type === 'plc_tombstone') return [];
  if (op.type === 'create') return [op.recoveryKey, op.signingKey];
  return op.rotationKeys;
}

// ---- validation of one operation ----

function invalid(message: string): PlcError {
  return new PlcError('InvalidOperation', message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function expectOnlyFields(obj: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw invalid(`${what} has an unexpected field "${key}"`);
  }
  for (const key of allowed) {
    if (!(key in obj)) throw invalid(`${what} is missing the field "${key}"`);
  }
}

function expectString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw invalid(`${what} must be a string`);
  return value;
}

function expectCidString(value: unknown, what: string): string {
  const text = expectString(value, what);
  if (!CID_STRING.test(text) || text.length > 128) throw invalid(`${what} must be a base32 CID string`);
  return text;
}

function expectSig(value: unknown): string {
  const sig = expectString(value, 'sig');
  if (!decodePlcSignature(sig)) {
    throw invalid('sig must be the unpadded, canonical base64url encoding of a 64-byte signature');
  }
  return sig;
}

/** A rotation key must be a did:key of a curve atproto can verify (secp256k1 or P-256). */
function expectRotationKey(value: unknown, what: string): string {
  const key = expectString(value, what);
  try {
    parseDidKey(key);
  } catch (err) {
    throw new PlcError('InvalidOperation', `${what} is not a secp256k1 or P-256 did:key: ${truncate(key)}`, {
      cause: err,
    });
  }
  return key;
}

/** Verification methods may use any key type, but must still be a did:key with a base58btc multibase. */
function expectAnyDidKey(value: unknown, what: string): string {
  const key = expectString(value, what);
  const multibase = key.slice(DID_KEY_PREFIX.length);
  if (!key.startsWith(DID_KEY_PREFIX) || !multibase.startsWith('z') || !BASE58BTC_CHARS.test(multibase.slice(1))) {
    throw invalid(`${what} must be a did:key with a base58btc multibase: ${truncate(key)}`);
  }
  return key;
}

function expectId(id: string, what: string): void {
  if (id.length === 0 || id.length > PLC_LIMITS.maxIdLength) {
    throw invalid(`${what} id "${truncate(id)}" must be 1-${PLC_LIMITS.maxIdLength} characters`);
  }
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

function validateRegularOperation(obj: Record<string, unknown>): PlcOperation {
  expectOnlyFields(
    obj,
    ['type', 'rotationKeys', 'verificationMethods', 'alsoKnownAs', 'services', 'prev', 'sig'],
    'plc_operation',
  );
  const { rotationKeys, verificationMethods, alsoKnownAs, services, prev } = obj;

  if (!Array.isArray(rotationKeys)) throw invalid('rotationKeys must be an array');
  if (rotationKeys.length < PLC_LIMITS.minRotationKeys || rotationKeys.length > PLC_LIMITS.maxRotationKeys) {
    throw invalid(
      `rotationKeys must hold ${PLC_LIMITS.minRotationKeys}-${PLC_LIMITS.maxRotationKeys} keys, got ${rotationKeys.length}`,
    );
  }
  const keys = rotationKeys.map((key, i) => expectRotationKey(key, `rotationKeys[${i}]`));
  if (new Set(keys).size !== keys.length) throw invalid('rotationKeys must not repeat a key');

  if (!isPlainObject(verificationMethods)) throw invalid('verificationMethods must be an object');
  const methodEntries = Object.entries(verificationMethods);
  if (methodEntries.length > PLC_LIMITS.maxVerificationMethods) {
    throw invalid(`verificationMethods may hold at most ${PLC_LIMITS.maxVerificationMethods} entries`);
  }
  const methods: Record<string, string> = {};
  for (const [id, key] of methodEntries) {
    expectId(id, 'verification method');
    methods[id] = expectAnyDidKey(key, `verificationMethods.${id}`);
  }

  if (!Array.isArray(alsoKnownAs)) throw invalid('alsoKnownAs must be an array');
  if (alsoKnownAs.length > PLC_LIMITS.maxAlsoKnownAs) {
    throw invalid(`alsoKnownAs may hold at most ${PLC_LIMITS.maxAlsoKnownAs} entries`);
  }
  const akas = alsoKnownAs.map((aka, i) => {
    const text = expectString(aka, `alsoKnownAs[${i}]`);
    if (text.length > PLC_LIMITS.maxAlsoKnownAsLength) {
      throw invalid(`alsoKnownAs[${i}] is longer than ${PLC_LIMITS.maxAlsoKnownAsLength} characters`);
    }
    return text;
  });
  if (new Set(akas).size !== akas.length) throw invalid('alsoKnownAs must not repeat an entry');

  if (!isPlainObject(services)) throw invalid('services must be an object');
  const serviceEntries = Object.entries(services);
  if (serviceEntries.length > PLC_LIMITS.maxServices) {
    throw invalid(`services may hold at most ${PLC_LIMITS.maxServices} entries`);
  }
  const serviceMap: Record<string, PlcService> = {};
  for (const [id, service] of serviceEntries) {
    expectId(id, 'service');
    if (!isPlainObject(service)) throw invalid(`services.${id} must be an object`);
    expectOnlyFields(service, ['type', 'endpoint'], `services.${id}`);
    const type = expectString(service.type, `services.${id}.type`);
    const endpoint = expectString(service.endpoint, `services.${id}.endpoint`);
    if (type.length > PLC_LIMITS.maxServiceTypeLength) {
      throw invalid(`services.${id}.type is longer than ${PLC_LIMITS.maxServiceTypeLength} characters`);
    }
    if (endpoint.length > PLC_LIMITS.maxServiceEndpointLength) {
      throw invalid(`services.${id}.endpoint is longer than ${PLC_LIMITS.maxServiceEndpointLength} characters`);
    }
    serviceMap[id] = { type, endpoint };
  }

  return {
    type: 'plc_operation',
    rotationKeys: keys,
    verificationMethods: methods,
    alsoKnownAs: akas,
    services: serviceMap,
    prev: prev === null ? null : expectCidString(prev, 'prev'),
    sig: expectSig(obj.sig),
  };
}

function validateLegacyCreate(obj: Record<string, unknown>): LegacyCreateOperation {
  expectOnlyFields(obj, ['type', 'signingKey', 'recoveryKey', 'handle', 'service', 'prev', 'sig'], 'create operation');
  if (obj.prev !== null) throw invalid('a legacy create operation must have prev null');
  return {
    type: 'create',
    signingKey: expectRotationKey(obj.signingKey, 'signingKey'),
    recoveryKey: expectRotationKey(obj.recoveryKey, 'recoveryKey'),
    handle: expectString(obj.handle, 'handle'),
    service: expectString(obj.service, 'service'),
    prev: null,
    sig: expectSig(obj.sig),
  };
}

/**
 * Checks that `input` (parsed JSON) is a well-formed signed operation within the spec's limits, and
 * returns a clean copy of it (same field values, so the same CID). Signatures are checked for
 * form only; who signed is a question of the log (rules.ts). The legacy `create` format is
 * refused unless `allowLegacy` is set: it may be read from old logs, never submitted anew.
 */
export function parsePlcOperation(input: unknown, opts: { allowLegacy?: boolean } = {}): AnyPlcOperation {
  if (!isPlainObject(input)) throw invalid('an operation must be a JSON object');
  let op: AnyPlcOperation;
  switch (input.type) {
    case 'plc_operation':
      op = validateRegularOperation(input);
      break;
    case 'plc_tombstone':
      expectOnlyFields(input, ['type', 'prev', 'sig'], 'plc_tombstone');
      op = { type: 'plc_tombstone', prev: expectCidString(input.prev, 'prev'), sig: expectSig(input.sig) };
      break;
    case 'create':
      if (!opts.allowLegacy) {
        throw invalid('the legacy "create" operation format is no longer accepted; use plc_operation');
      }
      op = validateLegacyCreate(input);
      break;
    default:
      throw invalid(`unknown operation type: ${JSON.stringify(input.type)?.slice(0, 64)}`);
  }
  const size = encodePlcOperation(op).byteLength;
  if (size > PLC_LIMITS.maxOperationBytes) {
    throw invalid(`operation is ${size} bytes in DAG-CBOR; the limit is ${PLC_LIMITS.maxOperationBytes}`);
  }
  return op;
}

/** Throws PlcError('InvalidOperation') unless `op` is a well-formed operation within the limits. */
export function assertValidPlcOperation(op: unknown, opts: { allowLegacy?: boolean } = {}): void {
  parsePlcOperation(op, opts);
}
