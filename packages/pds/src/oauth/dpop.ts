/**
 * DPoP (RFC 9449): a client proves, on every token request and every call with its token, that
 * it holds the private key the token is bound to. A proof is a short JWT signed by that key,
 * naming the HTTP method and URL (htm, htu), a unique id (jti), the time (iat), the server's
 * current nonce, and at a resource the hash of the access token (ath).
 *
 * Nonces are not stored: one is an HMAC of the current time window under a secret, so every
 * process that shares the secret agrees on them; the previous and next windows' nonces are
 * also accepted so a client that just fetched one is not refused at a boundary. Proof ids are
 * remembered for as long as a proof could still be accepted, so a captured proof cannot be
 * sent twice.
 */
import { createHash, createHmac } from 'node:crypto';
import {
  calculateJwkThumbprint,
  decodeProtectedHeader,
  EmbeddedJWK,
  errors as joseErrors,
  type JWK,
  jwtVerify,
} from 'jose';
import { invalidDpopProof, useDpopNonce } from './errors.ts';

/** The algorithms a proof may be signed with (what atproto clients use). */
export const DPOP_ALGORITHMS = ['ES256', 'ES256K', 'ES384', 'ES512', 'EdDSA', 'RS256', 'PS256'];
const NONCE_WINDOW_MS = 60_000;
/** How old a proof may be, and how far ahead a client's clock may run. */
const PROOF_MAX_AGE_S = 60;
const CLOCK_SKEW_S = 10;
const MAX_REMEMBERED_JTIS = 200_000;

export interface DpopProof {
  /** The SHA-256 thumbprint of the proof's key (RFC 7638), what tokens are bound to. */
  jkt: string;
  jti: string;
}

export interface DpopCheck {
  method: string;
  /** The URL the request was sent to; query and fragment are ignored. */
  url: string;
  /** At a resource server: the access token the proof must hash (ath). */
  accessToken?: string;
}

export class DpopVerifier {
  readonly #secret: Buffer;
  readonly #seen = new Map<string, number>();
  readonly #now: () => number;

  constructor(secret: Buffer, now: () => number = Date.now) {
    this.#secret = secret;
    this.#now = now;
  }

  #nonceFor(window: number): string {
    return createHmac('sha256', this.#secret).update(`dpop-nonce:${window}`).digest('base64url');
  }

  /** The nonce clients should use now (sent in every DPoP-Nonce header). */
  nextNonce(): string {
    return this.#nonceFor(Math.floor(this.#now() / NONCE_WINDOW_MS));
  }

  #nonceIsFresh(nonce: string): boolean {
    const window = Math.floor(this.#now() / NONCE_WINDOW_MS);
    return [window - 1, window, window + 1].some((w) => this.#nonceFor(w) === nonce);
  }

  /** Verifies the DPoP header of a request; throws invalid_dpop_proof or use_dpop_nonce. */
  async verify(header: string | string[] | undefined, check: DpopCheck): Promise<DpopProof> {
    if (header === undefined) throw invalidDpopProof('DPoP proof required');
    if (Array.isArray(header) || header.includes(',')) throw invalidDpopProof('exactly one DPoP proof is allowed');
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(header).alg;
    } catch {
      throw invalidDpopProof('DPoP proof is not a JWT');
    }
    if (!alg || !DPOP_ALGORITHMS.includes(alg))
      throw invalidDpopProof('DPoP proof signed with an unsupported algorithm');
    let payload: Record<string, unknown>;
    let jwk: JWK;
    try {
      const verified = await jwtVerify(header, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: DPOP_ALGORITHMS });
      payload = verified.payload;
      jwk = verified.protectedHeader.jwk!;
    } catch (err) {
      const why = err instanceof joseErrors.JOSEError ? err.message : 'invalid';
      throw invalidDpopProof(`DPoP proof could not be verified (${why})`);
    }
    const { jti, htm, htu, iat, nonce, ath } = payload;
    if (typeof jti !== 'string' || jti.length < 8 || jti.length > 256)
      throw invalidDpopProof('DPoP proof has no valid jti');
    if (htm !== check.method) throw invalidDpopProof('DPoP proof is for another HTTP method (htm)');
    if (typeof htu !== 'string' || normalizeHtu(htu) !== normalizeHtu(check.url)) {
      throw invalidDpopProof('DPoP proof is for another URL (htu)');
    }
    const nowS = this.#now() / 1000;
    if (typeof iat !== 'number' || iat > nowS + CLOCK_SKEW_S || iat < nowS - PROOF_MAX_AGE_S) {
      throw invalidDpopProof('DPoP proof is too old or from the future (iat)');
    }
    if (check.accessToken !== undefined) {
      const expected = createHash('sha256').update(check.accessToken).digest('base64url');
      if (ath !== expected) throw invalidDpopProof('DPoP proof does not match the access token (ath)');
    }
    if (typeof nonce !== 'string') throw useDpopNonce('Authorization server requires nonce in DPoP proof');
    if (!this.#nonceIsFresh(nonce)) throw useDpopNonce('DPoP nonce is stale; use the one in the DPoP-Nonce header');
    this.#remember(jti);
    return { jkt: await calculateJwkThumbprint(jwk, 'sha256'), jti };
  }

  /** Refuses a proof id seen before, and keeps it for as long as the proof could be replayed. */
  #remember(jti: string): void {
    const now = this.#now();
    const seenUntil = this.#seen.get(jti);
    if (seenUntil !== undefined && seenUntil > now) throw invalidDpopProof('DPoP proof was already used (jti replay)');
    if (this.#seen.size >= MAX_REMEMBERED_JTIS) {
      for (const [id, until] of this.#seen) if (until <= now) this.#seen.delete(id);
      // Still full of live ids: refuse rather than forget one that could be replayed.
      if (this.#seen.size >= MAX_REMEMBERED_JTIS)
        throw invalidDpopProof('too many DPoP proofs in flight; retry shortly');
    }
    this.#seen.set(jti, now + (PROOF_MAX_AGE_S + CLOCK_SKEW_S) * 1000);
  }
}

function normalizeHtu(value: string): string {
  try {
    const url = new URL(value);
    return `${url.origin}${url.pathname}`;
  } catch {
    return '';
  }
}
