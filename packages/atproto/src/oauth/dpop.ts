/**
 * DPoP (RFC 9449) proofs with an ES256 key made by WebCrypto. The private key is created
 * non-extractable and lives in memory only: nothing can read it out, and it is gone with the page.
 * Every request to the authorization server and to the PDS carries a fresh proof bound to its
 * method and URL (and, at the PDS, to the access token through `ath`).
 */
import { toBase64Url } from '@atcute/multibase';

const encoder = new TextEncoder();

export interface PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

export interface ProofClaims {
  /** The request's method. */
  htm: string;
  /** The request's URL; query and fragment are dropped as the spec says. */
  htu: string;
  /** The server's latest DPoP-Nonce, when it gave one. */
  nonce?: string;
  /** The access token the request carries (bound through its SHA-256). */
  accessToken?: string;
}

export class DpopKey {
  readonly #privateKey: CryptoKey;
  readonly jwk: PublicJwk;

  private constructor(privateKey: CryptoKey, jwk: PublicJwk) {
    this.#privateKey = privateKey;
    this.jwk = jwk;
  }

  static async generate(): Promise<DpopKey> {
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    // The public half is always exportable; only it is.
    const { x, y } = await crypto.subtle.exportKey('jwk', pair.publicKey);
    return new DpopKey(pair.privateKey, { kty: 'EC', crv: 'P-256', x: x!, y: y! });
  }

  /** A signed `dpop+jwt` for one request. */
  async proof(claims: ProofClaims): Promise<string> {
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: this.jwk };
    const payload: Record<string, unknown> = {
      jti: randomToken(16),
      htm: claims.htm.toUpperCase(),
      htu: htuOf(claims.htu),
      iat: Math.floor(Date.now() / 1000),
    };
    if (claims.nonce) payload.nonce = claims.nonce;
    if (claims.accessToken) payload.ath = await sha256Base64Url(claims.accessToken);
    const input = `${base64UrlJson(header)}.${base64UrlJson(payload)}`;
    // WebCrypto signs ECDSA as r || s (64 bytes), which is exactly what JWS ES256 wants.
    const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, this.#privateKey, encoder.encode(input));
    return `${input}.${toBase64Url(new Uint8Array(sig))}`;
  }
}

/** The URL a proof names: without query or fragment (RFC 9449, section 4.2). */
export function htuOf(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

export function randomToken(bytes: number): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}

export async function sha256Base64Url(text: string): Promise<string> {
  return toBase64Url(new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(text))));
}

function base64UrlJson(value: unknown): string {
  return toBase64Url(encoder.encode(JSON.stringify(value)));
}
