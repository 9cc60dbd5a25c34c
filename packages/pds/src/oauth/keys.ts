/**
 * The authorization server's secrets, made on first start and kept in
 * `<data directory>/oauth-keys.json` (mode 0600): the P-256 key access tokens are signed with
 * (its public half is the JWKS), and the secret DPoP nonces and page form tokens derive from.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type JWK, type KeyLike } from 'jose';

export interface OAuthKeys {
  signingKey: KeyLike;
  /** The public JWK (with kid, alg and use) the JWKS endpoint serves. */
  publicJwk: JWK;
  kid: string;
  /** For DPoP nonces and the sign-in page's form tokens. */
  secret: Buffer;
}

interface StoredKeys {
  privateJwk: JWK;
  secret: string;
}

export async function loadOAuthKeys(dataDirectory: string): Promise<OAuthKeys> {
  const path = join(dataDirectory, 'oauth-keys.json');
  let stored: StoredKeys;
  if (existsSync(path)) {
    stored = JSON.parse(readFileSync(path, 'utf8')) as StoredKeys;
  } else {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    stored = {
      privateJwk: { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'ES256', use: 'sig' },
      secret: randomBytes(32).toString('base64url'),
    };
    writeFileSync(path, `${JSON.stringify(stored)}\n`, { mode: 0o600 });
    chmodSync(path, 0o600);
  }
  const { d: _private, ...publicJwk } = stored.privateJwk;
  return {
    signingKey: (await importJWK(stored.privateJwk, 'ES256')) as KeyLike,
    publicJwk,
    kid: stored.privateJwk.kid!,
    secret: Buffer.from(stored.secret, 'base64url'),
  };
}
