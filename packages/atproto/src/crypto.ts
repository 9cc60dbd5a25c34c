/**
 * Signing keys, signatures and did:key, as atproto uses them (https://atproto.com/specs/cryptography):
 * two curves (secp256k1 "K-256" and NIST P-256), ECDSA over SHA-256, signatures in the 64-byte
 * compact `r || s` form and always low-S. Verification is strict on purpose: a high-S or a DER
 * encoded signature is rejected even though it is mathematically valid, because atproto forbids
 * signature malleability and every other implementation rejects them too.
 *
 * The signing and verifying itself is @atcute/crypto's (node:crypto or WebCrypto underneath, so it is
 * fast and constant-time where the platform is); @noble/curves only validates keys and points.
 */
import {
  P256PrivateKeyExportable,
  P256PublicKey,
  type PrivateKeyExportable,
  type PublicKey,
  Secp256k1PrivateKeyExportable,
  Secp256k1PublicKey,
} from '@atcute/crypto';
import { fromBase16, fromBase58Btc, toBase16, toBase58Btc } from '@atcute/multibase';
import type { ECDSA } from '@noble/curves/abstract/weierstrass.js';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { AtprotoError } from './errors.ts';

export type KeyAlgorithm = 'secp256k1' | 'p256';

export interface SigningKey {
  readonly algorithm: KeyAlgorithm;
  readonly jwtAlg: 'ES256K' | 'ES256';
  /** The public key as a did:key (`did:key:z...`). */
  did(): string;
  /** 64-byte compact, low-S ECDSA signature over SHA-256(data). */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

export interface ExportableSigningKey extends SigningKey {
  /** The 32-byte private scalar (a copy; callers may wipe it). */
  privateKeyBytes(): Uint8Array;
  privateKeyHex(): string;
}

export class CryptoError extends AtprotoError {}

/** Per-curve constants: multicodec prefixes (varint-encoded), JWT alg, curve order and validators. */
interface CurveInfo {
  algorithm: KeyAlgorithm;
  jwtAlg: 'ES256K' | 'ES256';
  publicPrefix: readonly [number, number];
  order: bigint;
  isValidPublicKey(bytes: Uint8Array): boolean;
  isValidSecretKey(bytes: Uint8Array): boolean;
  randomSecretKey(): Uint8Array;
  decompress(bytes: Uint8Array): Uint8Array;
  compress(bytes: Uint8Array): Uint8Array;
}

/** The validators and point conversions read the same from either noble curve. */
function curveInfo(curve: ECDSA, constants: Pick<CurveInfo, 'algorithm' | 'jwtAlg' | 'publicPrefix'>): CurveInfo {
  return {
    ...constants,
    order: curve.Point.CURVE().n,
    isValidPublicKey: (bytes) => curve.utils.isValidPublicKey(bytes, true),
    isValidSecretKey: (bytes) => curve.utils.isValidSecretKey(bytes),
    randomSecretKey: () => curve.utils.randomSecretKey(),
    decompress: (bytes) => curve.Point.fromBytes(bytes).toBytes(false),
    compress: (bytes) => curve.Point.fromBytes(bytes).toBytes(true),
  };
}

const CURVES: Record<KeyAlgorithm, CurveInfo> = {
  // multicodec secp256k1-pub
  secp256k1: curveInfo(secp256k1, { algorithm: 'secp256k1', jwtAlg: 'ES256K', publicPrefix: [0xe7, 0x01] }),
  // multicodec p256-pub
  p256: curveInfo(p256, { algorithm: 'p256', jwtAlg: 'ES256', publicPrefix: [0x80, 0x24] }),
};

const DID_KEY_PREFIX = 'did:key:';
const SIGNATURE_LENGTH = 64;

function curve(algorithm: KeyAlgorithm | undefined): CurveInfo {
  const info = CURVES[algorithm ?? 'secp256k1'];
  if (!info) throw new CryptoError('UnsupportedKeyType', `unsupported key algorithm: ${String(algorithm)}`);
  return info;
}

function curveByJwtAlg(jwtAlg: string): CurveInfo | undefined {
  return jwtAlg === 'ES256K' ? CURVES.secp256k1 : jwtAlg === 'ES256' ? CURVES.p256 : undefined;
}

class AtcuteSigningKey implements ExportableSigningKey {
  readonly algorithm: KeyAlgorithm;
  readonly jwtAlg: 'ES256K' | 'ES256';
  readonly #key: PrivateKeyExportable;
  readonly #privateKey: Uint8Array;
  readonly #did: string;

  constructor(info: CurveInfo, key: PrivateKeyExportable, privateKey: Uint8Array, did: string) {
    this.algorithm = info.algorithm;
    this.jwtAlg = info.jwtAlg;
    this.#key = key;
    this.#privateKey = privateKey;
    this.#did = did;
  }

  did(): string {
    return this.#did;
  }

  sign(data: Uint8Array): Promise<Uint8Array> {
    // @atcute/crypto hashes with SHA-256 and normalizes to low-S for both curves.
    return this.#key.sign(data);
  }

  privateKeyBytes(): Uint8Array {
    return this.#privateKey.slice();
  }

  privateKeyHex(): string {
    return toBase16(this.#privateKey);
  }
}

/** Creates a fresh random key pair (secp256k1 unless told otherwise). */
export async function generateSigningKey(algorithm: KeyAlgorithm = 'secp256k1'): Promise<ExportableSigningKey> {
  const info = curve(algorithm);
  return importSigningKey(info.randomSecretKey(), algorithm);
}

/** Imports a 32-byte private key, given as bytes or as 64 hex characters. */
export async function importSigningKey(
  privateKey: Uint8Array | string,
  algorithm: KeyAlgorithm = 'secp256k1',
): Promise<ExportableSigningKey> {
  const info = curve(algorithm);
  let bytes: Uint8Array;
  if (typeof privateKey === 'string') {
    if (!/^[0-9a-fA-F]{64}$/.test(privateKey)) {
      throw new CryptoError('InvalidPrivateKey', 'private key hex must be exactly 64 hexadecimal characters');
    }
    bytes = fromBase16(privateKey.toLowerCase());
  } else if (privateKey instanceof Uint8Array) {
    bytes = privateKey.slice();
  } else {
    throw new CryptoError('InvalidPrivateKey', 'private key must be a Uint8Array or a hex string');
  }
  if (bytes.length !== 32) {
    throw new CryptoError('InvalidPrivateKey', `private key must be 32 bytes, got ${bytes.length}`);
  }
  if (!info.isValidSecretKey(bytes)) {
    throw new CryptoError(
      'InvalidPrivateKey',
      `private key is not a valid ${algorithm} scalar (zero or >= curve order)`,
    );
  }
  const key =
    algorithm === 'p256'
      ? await P256PrivateKeyExportable.importRaw(bytes)
      : await Secp256k1PrivateKeyExportable.importRaw(bytes);
  const did = await key.exportPublicKey('did');
  return new AtcuteSigningKey(info, key, bytes, did);
}

/** Parses a did:key into its curve and its 33-byte compressed public key; throws CryptoError otherwise. */
export function parseDidKey(didKey: string): { algorithm: KeyAlgorithm; publicKey: Uint8Array } {
  if (typeof didKey !== 'string' || !didKey.startsWith(DID_KEY_PREFIX)) {
    throw new CryptoError('InvalidDidKey', `not a did:key: ${describe(didKey)}`);
  }
  return parseMultikey(didKey.slice(DID_KEY_PREFIX.length), didKey);
}

/** Formats a public key (compressed or uncompressed SEC1 point) as a did:key; always emits the compressed form. */
export function formatDidKey(algorithm: KeyAlgorithm, publicKey: Uint8Array): string {
  const info = curve(algorithm);
  let compressed = publicKey;
  if (publicKey.length === 65) {
    try {
      compressed = info.compress(publicKey);
    } catch (err) {
      throw new CryptoError('InvalidPublicKey', `public key is not a valid ${algorithm} point`, { cause: err });
    }
  }
  if (compressed.length !== 33 || !info.isValidPublicKey(compressed)) {
    throw new CryptoError('InvalidPublicKey', `public key is not a valid compressed ${algorithm} point`);
  }
  const multicodec = new Uint8Array(2 + compressed.length);
  multicodec[0] = info.publicPrefix[0];
  multicodec[1] = info.publicPrefix[1];
  multicodec.set(compressed, 2);
  return `${DID_KEY_PREFIX}z${toBase58Btc(multicodec)}`;
}

/** The `publicKeyMultibase` value of a DID document's Multikey verification method for this did:key. */
export function didKeyToMultikey(didKey: string): string {
  parseDidKey(didKey);
  return didKey.slice(DID_KEY_PREFIX.length);
}

/** The did:key for a Multikey `publicKeyMultibase` value. */
export function multikeyToDidKey(multibase: string): string {
  parseMultikey(multibase, multibase);
  return DID_KEY_PREFIX + multibase;
}

/**
 * did:key for a DID document verification method. Besides `Multikey`, accepts the legacy
 * `EcdsaSecp256k1VerificationKey2019` / `EcdsaSecp256r1VerificationKey2019` types, whose
 * publicKeyMultibase is the bare compressed point without a multicodec prefix; older DID documents
 * still carry them.
 */
export function didKeyFromVerificationMethod(type: string, publicKeyMultibase: string): string {
  if (type === 'Multikey') return multikeyToDidKey(publicKeyMultibase);
  const algorithm: KeyAlgorithm | undefined =
    type === 'EcdsaSecp256k1VerificationKey2019'
      ? 'secp256k1'
      : type === 'EcdsaSecp256r1VerificationKey2019'
        ? 'p256'
        : undefined;
  if (!algorithm)
    throw new CryptoError('UnsupportedKeyType', `unsupported verification method type: ${describe(type)}`);
  return formatDidKey(algorithm, decodeBase58Multibase(publicKeyMultibase, publicKeyMultibase));
}

/**
 * Verifies a signature made by the did:key's private key over `data`. Returns false for a wrong or
 * malformed signature (including high-S and DER-encoded ones); throws CryptoError when the did:key
 * itself is not a valid atproto key, since that is a caller/configuration error, not a bad signature.
 */
export async function verifySignature(didKey: string, data: Uint8Array, sig: Uint8Array): Promise<boolean> {
  const publicKey = await importPublicKey(didKey);
  const info = curve(publicKey.type as KeyAlgorithm);
  if (!(sig instanceof Uint8Array) || sig.length !== SIGNATURE_LENGTH) return false; // DER is 70-72 bytes
  if (!isLowS(sig, info.order)) return false;
  try {
    return await publicKey.verify(sig, data);
  } catch {
    return false;
  }
}

/** True when a 64-byte compact signature's s is in the lower half of the curve order (non-malleable form). */
export function isLowS(sig: Uint8Array, order: bigint): boolean {
  if (sig.length !== SIGNATURE_LENGTH) return false;
  let r = 0n;
  let s = 0n;
  for (let i = 0; i < 32; i++) r = (r << 8n) | BigInt(sig[i]!);
  for (let i = 32; i < 64; i++) s = (s << 8n) | BigInt(sig[i]!);
  return r > 0n && r < order && s > 0n && s <= order >> 1n;
}

/** The JWT `alg` for a did:key: ES256K for secp256k1, ES256 for P-256. */
export function jwtAlgForDidKey(didKey: string): 'ES256K' | 'ES256' {
  return curve(parseDidKey(didKey).algorithm).jwtAlg;
}

/** The algorithm named by a JWT `alg`, or throws CryptoError for any other alg. */
export function algorithmForJwtAlg(jwtAlg: string): KeyAlgorithm {
  const info = curveByJwtAlg(jwtAlg);
  if (!info) throw new CryptoError('UnsupportedKeyType', `unsupported JWT alg: ${describe(jwtAlg)}`);
  return info.algorithm;
}

// Verification is hot (every commit and every service-auth JWT checks one), and importing a key
// decompresses a point; keep the most recently used keys imported. Bounded so that a stream of
// distinct keys cannot grow memory without limit.
const PUBLIC_KEY_CACHE_LIMIT = 1000;
const publicKeyCache = new Map<string, Promise<PublicKey>>();

function importPublicKey(didKey: string): Promise<PublicKey> {
  const cached = publicKeyCache.get(didKey);
  if (cached) return cached;
  const { algorithm, publicKey } = parseDidKey(didKey);
  const imported: Promise<PublicKey> =
    algorithm === 'p256' ? P256PublicKey.importRaw(publicKey) : Secp256k1PublicKey.importRaw(publicKey);
  const guarded = imported.catch((err: unknown) => {
    publicKeyCache.delete(didKey);
    throw new CryptoError('InvalidDidKey', `could not import the public key of ${describe(didKey)}`, { cause: err });
  });
  if (publicKeyCache.size >= PUBLIC_KEY_CACHE_LIMIT) {
    const oldest = publicKeyCache.keys().next().value;
    if (oldest !== undefined) publicKeyCache.delete(oldest);
  }
  publicKeyCache.set(didKey, guarded);
  return guarded;
}

function parseMultikey(multibase: string, original: string): { algorithm: KeyAlgorithm; publicKey: Uint8Array } {
  const bytes = decodeBase58Multibase(multibase, original);
  if (bytes.length < 3) throw new CryptoError('InvalidDidKey', `key too short: ${describe(original)}`);
  let info: CurveInfo | undefined;
  for (const candidate of Object.values(CURVES)) {
    if (bytes[0] === candidate.publicPrefix[0] && bytes[1] === candidate.publicPrefix[1]) info = candidate;
  }
  if (!info) {
    const codec = ((bytes[0]! << 8) | bytes[1]!).toString(16).padStart(4, '0');
    throw new CryptoError(
      'UnsupportedKeyType',
      `unsupported key type (multicodec prefix 0x${codec}) in ${describe(original)}`,
    );
  }
  const publicKey = bytes.slice(2);
  if (publicKey.length !== 33) {
    throw new CryptoError(
      'InvalidDidKey',
      `${info.algorithm} key must be a 33-byte compressed point, got ${publicKey.length} bytes in ${describe(original)}`,
    );
  }
  if (!info.isValidPublicKey(publicKey)) {
    throw new CryptoError('InvalidDidKey', `not a point on the ${info.algorithm} curve: ${describe(original)}`);
  }
  return { algorithm: info.algorithm, publicKey };
}

function decodeBase58Multibase(multibase: string, original: string): Uint8Array {
  if (typeof multibase !== 'string' || multibase.length < 2 || multibase[0] !== 'z') {
    throw new CryptoError(
      'InvalidDidKey',
      `not a base58btc multibase key (must start with "z"): ${describe(original)}`,
    );
  }
  try {
    return fromBase58Btc(multibase.slice(1));
  } catch (err) {
    throw new CryptoError('InvalidDidKey', `invalid base58btc in ${describe(original)}`, { cause: err });
  }
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 120)) : typeof value;
}

/** Uncompressed (65-byte) SEC1 form of a compressed public key, e.g. for JWK x/y coordinates. */
export function decompressPublicKey(algorithm: KeyAlgorithm, publicKey: Uint8Array): Uint8Array {
  try {
    return curve(algorithm).decompress(publicKey);
  } catch (err) {
    throw new CryptoError('InvalidPublicKey', `public key is not a valid ${algorithm} point`, { cause: err });
  }
}
