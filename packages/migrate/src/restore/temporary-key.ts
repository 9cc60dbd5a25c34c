/**
 * The signing key a restore names in the DID document until the new server's key takes over. The
 * new server accepts createAccount for an existing DID only with a service token signed by the
 * DID's #atproto key; with the old server gone, nobody holds that key, so the restore's first PLC
 * operation names one the restore holds. It is derived from the recovery key and the DID rather
 * than generated, so a run started again after a kill finds the same key without it ever being
 * written down; it is worthless once the identity names the new server's key.
 */
import { sha256 } from '@portage/atproto/cid';
import { type ExportableSigningKey, importSigningKey } from '@portage/atproto/crypto';
import { toBase64Url } from '@atcute/multibase';

export async function temporarySigningKey(
  recoveryKey: ExportableSigningKey,
  did: string,
): Promise<ExportableSigningKey> {
  const label = new TextEncoder().encode(`portage restore signing key\0${did}\0`);
  const secret = recoveryKey.privateKeyBytes();
  const input = new Uint8Array(label.length + secret.length);
  input.set(label);
  input.set(secret, label.length);
  secret.fill(0);
  return importSigningKey(sha256(input), 'secp256k1');
}

/** A service JWT (iss = the DID, aud, lxm), as a PDS's getServiceAuth would mint it. */
export async function mintServiceToken(args: {
  key: ExportableSigningKey;
  iss: string;
  aud: string;
  lxm: string;
  ttlSeconds: number;
}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jti = new Uint8Array(16);
  crypto.getRandomValues(jti);
  const text = (value: unknown) => toBase64Url(new TextEncoder().encode(JSON.stringify(value)));
  const payload = {
    iat: now,
    iss: args.iss,
    aud: args.aud,
    exp: now + args.ttlSeconds,
    lxm: args.lxm,
    jti: Array.from(jti, (b) => b.toString(16).padStart(2, '0')).join(''),
  };
  const signingInput = `${text({ typ: 'JWT', alg: args.key.jwtAlg })}.${text(payload)}`;
  const sig = await args.key.sign(new TextEncoder().encode(signingInput));
  return `${signingInput}.${toBase64Url(sig)}`;
}
