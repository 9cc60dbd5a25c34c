/**
 * Service-auth JWTs: what we mint verifies with the reference's verifier, what the reference
 * mints verifies with ours, and every way a token can be wrong fails with its own error name.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { P256Keypair, Secp256k1Keypair } from '@atproto/crypto';
import { createServiceJwt, verifyJwt } from '@atproto/xrpc-server';
import { generateSigningKey } from '@portage/atproto/crypto';
import {
  checkRequestedExpiry,
  mintServiceJwt,
  verifyServiceJwt,
  type VerifyServiceJwtOptions,
} from '../src/auth/service-auth.ts';
import { XrpcError } from '../src/xrpc/errors.ts';

const SERVICE_DID = 'did:web:new-pds.test';
const NSID = 'com.atproto.server.createAccount';
const ISSUER = 'did:plc:abcdefghijklmnopqrstuvwx';

function keyResolver(keys: string[]): VerifyServiceJwtOptions['resolveSigningKey'] & { calls: boolean[] } {
  const calls: boolean[] = [];
  const resolve = async (_did: string, forceRefresh: boolean) => {
    calls.push(forceRefresh);
    return keys[Math.min(calls.length - 1, keys.length - 1)];
  };
  return Object.assign(resolve, { calls });
}

async function rejects(promise: Promise<unknown>, error: string, status = 401): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof XrpcError, `expected an XrpcError, got ${String(err)}`);
    assert.equal(err.error, error, err.message);
    assert.equal(err.status, status);
    return true;
  });
}

describe('service auth JWTs', () => {
  it('mints tokens the reference verifier accepts (ES256K and ES256)', async () => {
    for (const algorithm of ['secp256k1', 'p256'] as const) {
      const key = await generateSigningKey(algorithm);
      const jwt = await mintServiceJwt({ iss: ISSUER, aud: SERVICE_DID, lxm: NSID, key });
      const payload = await verifyJwt(jwt, SERVICE_DID, NSID, async () => key.did());
      assert.equal(payload.iss, ISSUER);
      assert.equal(payload.aud, SERVICE_DID);
      assert.equal(payload.lxm, NSID);
      assert.ok(payload.exp > Date.now() / 1000 && payload.exp <= Date.now() / 1000 + 61);
      const [header] = jwt.split('.');
      assert.deepEqual(JSON.parse(Buffer.from(header!, 'base64url').toString()), {
        typ: 'JWT',
        alg: key.jwtAlg,
      });
    }
  });

  it('verifies tokens the reference mints', async () => {
    for (const keypair of [await Secp256k1Keypair.create(), await P256Keypair.create()]) {
      const jwt = await createServiceJwt({ iss: ISSUER, aud: SERVICE_DID, lxm: NSID, keypair });
      const verified = await verifyServiceJwt(jwt, {
        serviceDid: SERVICE_DID,
        nsid: NSID,
        resolveSigningKey: async () => keypair.did(),
      });
      assert.equal(verified.did, ISSUER);
      assert.equal(verified.lxm, NSID);
    }
  });

  it('rejects each kind of bad token with its own error', async () => {
    const key = await generateSigningKey();
    const other = await generateSigningKey();
    const opts = { serviceDid: SERVICE_DID, nsid: NSID, resolveSigningKey: async () => key.did() };
    const now = Math.floor(Date.now() / 1000);
    const good = { iss: ISSUER, aud: SERVICE_DID, lxm: NSID, key };

    await rejects(
      verifyServiceJwt(await mintServiceJwt({ ...good, aud: 'did:web:other.test' }), opts),
      'BadJwtAudience',
    );
    await rejects(
      verifyServiceJwt(await mintServiceJwt({ ...good, now: now - 120, exp: now - 60 }), opts),
      'JwtExpired',
    );
    await rejects(
      verifyServiceJwt(await mintServiceJwt({ ...good, lxm: 'com.atproto.repo.importRepo' }), opts),
      'BadJwtLexiconMethod',
    );
    await rejects(verifyServiceJwt(await mintServiceJwt({ ...good, lxm: undefined }), opts), 'BadJwtLexiconMethod');
    await rejects(verifyServiceJwt(await mintServiceJwt({ ...good, key: other }), opts), 'BadJwtSignature');
    await rejects(verifyServiceJwt(await mintServiceJwt({ ...good, exp: now + 3 * 3600 }), opts), 'BadJwt');
    await rejects(verifyServiceJwt('not.a.jwt', opts), 'BadJwt');
    // Unsigned, or HMAC keyed with the issuer's public key: a signature that does not verify.
    const [, goodPayload] = (await mintServiceJwt(good)).split('.');
    for (const alg of ['none', 'HS256']) {
      const header = Buffer.from(JSON.stringify({ typ: 'JWT', alg })).toString('base64url');
      const input = `${header}.${goodPayload}`;
      const sig = alg === 'none' ? '' : createHmac('sha256', key.did()).update(input).digest('base64url');
      await rejects(verifyServiceJwt(`${input}.${sig}`, opts), 'BadJwtSignature');
    }

    // A session token shape is refused before anything else is looked at.
    const jwt = await mintServiceJwt(good);
    const [, payload, sig] = jwt.split('.');
    const sessionHeader = Buffer.from(JSON.stringify({ typ: 'at+jwt', alg: 'ES256K' })).toString('base64url');
    await rejects(verifyServiceJwt(`${sessionHeader}.${payload}.${sig}`, opts), 'BadJwtType');
    // Tampering with the payload breaks the signature.
    const forged = Buffer.from(
      JSON.stringify({
        ...JSON.parse(Buffer.from(payload!, 'base64url').toString()),
        iss: 'did:plc:zzzzzzzzzzzzzzzzzzzzzzzz',
      }),
    );
    await rejects(
      verifyServiceJwt(`${jwt.split('.')[0]}.${forged.toString('base64url')}.${sig}`, opts),
      'BadJwtSignature',
    );
  });

  it('refetches the DID document once when the signature fails (the key may have rotated)', async () => {
    const oldKey = await generateSigningKey();
    const newKey = await generateSigningKey();
    const jwt = await mintServiceJwt({ iss: ISSUER, aud: SERVICE_DID, lxm: NSID, key: newKey });
    const resolver = keyResolver([oldKey.did(), newKey.did()]);
    const verified = await verifyServiceJwt(jwt, { serviceDid: SERVICE_DID, nsid: NSID, resolveSigningKey: resolver });
    assert.equal(verified.did, ISSUER);
    assert.deepEqual(resolver.calls, [false, true]);

    const stale = keyResolver([oldKey.did()]);
    await rejects(
      verifyServiceJwt(jwt, { serviceDid: SERVICE_DID, nsid: NSID, resolveSigningKey: stale }),
      'BadJwtSignature',
    );
    assert.deepEqual(stale.calls, [false, true], 'exactly one refetch');
  });

  it('applies the minting expiry rules', () => {
    const now = 1_700_000_000;
    assert.equal(checkRequestedExpiry(undefined, NSID, now), now + 60);
    assert.equal(checkRequestedExpiry(now + 3600, NSID, now), now + 3600);
    assert.equal(checkRequestedExpiry(now + 60, undefined, now), now + 60);
    assert.throws(
      () => checkRequestedExpiry(now - 1, NSID, now),
      (e: XrpcError) => e.error === 'BadExpiration',
    );
    assert.throws(() => checkRequestedExpiry(now + 3601, NSID, now), /more than an hour/);
    assert.throws(() => checkRequestedExpiry(now + 61, undefined, now), /method-less token/);
  });
});
