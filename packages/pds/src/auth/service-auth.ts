/**
 * Service-auth JWTs: short-lived tokens an account's signing key signs so that another
 * service (a new PDS during a migration, an AppView, a labeler) can trust a call made on the
 * account's behalf. Shaped exactly like the reference's so both directions interoperate:
 *   header  {typ: 'JWT', alg: 'ES256K' | 'ES256'}
 *   payload {iat, iss: did, aud: service DID, exp, lxm?: NSID, jti: random}
 * The signature is the 64-byte compact low-S ECDSA signature over SHA-256(header.payload),
 * base64url, as JOSE specifies for ES256/ES256K.
 *
 * Minting rules (getServiceAuth): exp in the future and at most an hour ahead, at most a minute
 * ahead when the token is not bound to one method (lxm), because an unbound token is a
 * bearer credential for everything the audience serves.
 */
import { randomBytes } from 'node:crypto';
import { jwtAlgForDidKey, type SigningKey, verifySignature } from '@portage/atproto/crypto';
import { AuthRequired, InvalidRequest, type XrpcError } from '../xrpc/errors.ts';

export const SERVICE_JWT_DEFAULT_TTL_SECONDS = 60;
export const SERVICE_JWT_MAX_TTL_SECONDS = 60 * 60;
export const SERVICE_JWT_MAX_TTL_WITHOUT_LXM_SECONDS = 60;
/** Clock skew tolerated between the minting service and us when checking `exp` bounds. */
const CLOCK_SKEW_SECONDS = 60;

export interface ServiceJwtPayload {
  iat: number;
  iss: string;
  aud: string;
  exp: number;
  lxm?: string;
  jti: string;
}

export interface MintServiceJwtArgs {
  /** The account DID (optionally with a #fragment naming one of its services). */
  iss: string;
  aud: string;
  /** The one method the token may call; omit only for short-lived unbound tokens. */
  lxm?: string;
  /** Expiry in seconds since the epoch; default now + 60 s. */
  exp?: number;
  key: SigningKey;
  /** Seconds since the epoch; injectable for tests. */
  now?: number;
}

function base64url(bytes: Uint8Array | string): string {
  return Buffer.from(typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes).toString('base64url');
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Checks a requested expiry against the minting rules; throws 400 BadExpiration naming the
 * rule broken. Returns the expiry to use (the default when none was asked for).
 */
export function checkRequestedExpiry(exp: number | undefined, lxm: string | undefined, now = nowSeconds()): number {
  if (exp === undefined) return now + SERVICE_JWT_DEFAULT_TTL_SECONDS;
  const ttl = exp - now;
  if (ttl <= 0) throw InvalidRequest('expiration is in past', 'BadExpiration');
  if (ttl > SERVICE_JWT_MAX_TTL_SECONDS) {
    throw InvalidRequest('cannot request a token with an expiration more than an hour in the future', 'BadExpiration');
  }
  if (lxm === undefined && ttl > SERVICE_JWT_MAX_TTL_WITHOUT_LXM_SECONDS) {
    throw InvalidRequest(
      'cannot request a method-less token with an expiration more than a minute in the future',
      'BadExpiration',
    );
  }
  return exp;
}

/** Signs a service JWT with the account's key. Callers check `exp` with checkRequestedExpiry first. */
export async function mintServiceJwt(args: MintServiceJwtArgs): Promise<string> {
  const now = args.now ?? nowSeconds();
  const payload: ServiceJwtPayload = {
    iat: now,
    iss: args.iss,
    aud: args.aud,
    exp: args.exp ?? now + SERVICE_JWT_DEFAULT_TTL_SECONDS,
    ...(args.lxm !== undefined ? { lxm: args.lxm } : {}),
    jti: randomBytes(16).toString('hex'),
  };
  const signingInput = `${base64url(JSON.stringify({ typ: 'JWT', alg: args.key.jwtAlg }))}.${base64url(JSON.stringify(payload))}`;
  const sig = await args.key.sign(new TextEncoder().encode(signingInput));
  return `${signingInput}.${base64url(sig)}`;
}

export interface VerifyServiceJwtOptions {
  /** Our service DID: the only audience accepted. */
  serviceDid: string;
  /** The method being called; the token's lxm must name it. */
  nsid: string;
  /**
   * The issuer's #atproto signing key (did:key) from its DID document. `forceRefresh` asks
   * for a fresh resolution after a signature failed: the key may have just rotated.
   */
  resolveSigningKey: (did: string, forceRefresh: boolean) => Promise<string | undefined>;
  now?: number;
}

export interface VerifiedServiceJwt {
  /** The issuing account (the `iss` without a #service fragment). */
  did: string;
  iss: string;
  aud: string;
  lxm: string;
  exp: number;
  jti: string | undefined;
}

interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: Uint8Array;
  signature: Uint8Array;
}

function decodeJwt(token: string): DecodedJwt | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) return undefined;
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
    const payload: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    if (!isObject(header) || !isObject(payload)) return undefined;
    return {
      header,
      payload,
      signingInput: new TextEncoder().encode(`${parts[0]}.${parts[1]}`),
      signature: new Uint8Array(Buffer.from(parts[2]!, 'base64url')),
    };
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(message: string, error: string): XrpcError {
  return AuthRequired(message, error);
}

/**
 * Verifies a service JWT presented to us. Each failure is a 401 with the reference's error
 * name, so a client can tell an expired token (get a new one) from a wrong audience (wrong
 * server) or a stale key (the DID document changed): BadJwt, BadJwtType, JwtExpired,
 * BadJwtAudience, BadJwtLexiconMethod, BadJwtSignature.
 */
export async function verifyServiceJwt(token: string, opts: VerifyServiceJwtOptions): Promise<VerifiedServiceJwt> {
  const jwt = decodeJwt(token);
  if (!jwt) throw bad('poorly formatted jwt', 'BadJwt');
  const { header, payload } = jwt;
  // Session and proof-of-possession tokens are never accepted as service tokens.
  if (header.typ === 'at+jwt' || header.typ === 'refresh+jwt' || header.typ === 'dpop+jwt') {
    throw bad(`Invalid jwt type "${String(header.typ)}"`, 'BadJwtType');
  }
  const now = opts.now ?? nowSeconds();
  if (typeof payload.exp !== 'number' || !Number.isFinite(payload.exp)) throw bad('jwt has no expiry', 'BadJwt');
  if (payload.exp <= now) throw bad('jwt expired', 'JwtExpired');
  if (payload.exp > now + SERVICE_JWT_MAX_TTL_SECONDS + CLOCK_SKEW_SECONDS) {
    throw bad('jwt expires more than an hour in the future', 'BadJwt');
  }
  if (typeof payload.iss !== 'string' || !payload.iss.startsWith('did:')) throw bad('jwt has no issuer DID', 'BadJwt');
  if (payload.aud !== opts.serviceDid) {
    throw bad(`jwt audience does not match service did (expected ${opts.serviceDid})`, 'BadJwtAudience');
  }
  if (typeof payload.lxm !== 'string') throw bad('missing jwt lexicon method ("lxm")', 'BadJwtLexiconMethod');
  if (payload.lxm !== opts.nsid) {
    throw bad(`bad jwt lexicon method ("lxm"). must match: ${opts.nsid}`, 'BadJwtLexiconMethod');
  }
  // Only an ECDSA signature by the issuer's key counts: `none`, and HMAC keyed with something
  // public (the issuer's key), are refused as a signature that does not verify, as the reference
  // words it, before any key is looked up.
  if (header.alg !== 'ES256K' && header.alg !== 'ES256') {
    throw bad('could not verify jwt signature', 'BadJwtSignature');
  }
  const did = payload.iss.split('#')[0]!;
  const signedBy = async (forceRefresh: boolean): Promise<boolean> => {
    const key = await opts.resolveSigningKey(did, forceRefresh).catch(() => undefined);
    if (!key) throw bad(`could not resolve the signing key of ${did}`, 'BadJwtSignature');
    try {
      // An ES256 token cannot have been made by a secp256k1 key, nor the reverse.
      if (jwtAlgForDidKey(key) !== header.alg) return false;
      return await verifySignature(key, jwt.signingInput, jwt.signature);
    } catch {
      return false; // the document names something that is not a usable key
    }
  };
  if (!(await signedBy(false)) && !(await signedBy(true))) {
    throw bad('jwt signature does not match jwt issuer', 'BadJwtSignature');
  }
  return {
    did,
    iss: payload.iss,
    aud: payload.aud,
    lxm: payload.lxm,
    exp: payload.exp,
    jti: typeof payload.jti === 'string' ? payload.jti : undefined,
  };
}

/** The Bearer token of an Authorization header, or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const [type, token, ...rest] = authorization.split(' ');
  if (rest.length > 0 || !token || type?.toLowerCase() !== 'bearer') return undefined;
  return token;
}
