import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fromBase58Btc, fromBase64, toBase58Btc } from '@atcute/multibase';
import * as reference from '@atproto/crypto';
import {
  algorithmForJwtAlg,
  CryptoError,
  decompressPublicKey,
  didKeyFromVerificationMethod,
  didKeyToMultikey,
  formatDidKey,
  generateSigningKey,
  importSigningKey,
  jwtAlgForDidKey,
  type KeyAlgorithm,
  multikeyToDidKey,
  parseDidKey,
  verifySignature,
} from '../src/crypto.ts';

const fixtures = join(import.meta.dirname, '../../../test/fixtures/interop/crypto');
const readJson = (name: string) => JSON.parse(readFileSync(join(fixtures, name), 'utf8'));

interface SignatureFixture {
  comment: string;
  messageBase64: string;
  algorithm: 'ES256' | 'ES256K';
  didDocSuite: string;
  publicKeyDid: string;
  publicKeyMultibase: string;
  signatureBase64: string;
  validSignature: boolean;
  tags: string[];
}

const signatureFixtures: SignatureFixture[] = readJson('signature-fixtures.json');
// The fixtures use unpadded standard base64; @atcute's decoder wants it that way too.
const b64 = (s: string) => fromBase64(s.replace(/=+$/, ''));

test('signature-fixtures.json: every vector verifies as the fixture says', async (t) => {
  const counts: Record<string, number> = {};
  for (const f of signatureFixtures) {
    const ok = await verifySignature(f.publicKeyDid, b64(f.messageBase64), b64(f.signatureBase64));
    assert.equal(ok, f.validSignature, f.comment);
    assert.equal(jwtAlgForDidKey(f.publicKeyDid), f.algorithm, f.comment);
    const kind = f.validSignature ? 'valid' : `invalid(${f.tags.join(',')})`;
    counts[kind] = (counts[kind] ?? 0) + 1;
  }
  assert.equal(signatureFixtures.length, 6);
  assert.ok((counts['invalid(high-s)'] ?? 0) >= 2 && (counts['invalid(der-encoded)'] ?? 0) >= 2);
  t.diagnostic(`signature vectors run: ${signatureFixtures.length} ${JSON.stringify(counts)}`);
});

test('signature-fixtures.json: legacy verification methods map to the same did:key', (t) => {
  for (const f of signatureFixtures) {
    assert.equal(didKeyFromVerificationMethod(f.didDocSuite, f.publicKeyMultibase), f.publicKeyDid, f.comment);
    assert.equal(multikeyToDidKey(didKeyToMultikey(f.publicKeyDid)), f.publicKeyDid);
  }
  t.diagnostic(`verification-method vectors run: ${signatureFixtures.length}`);
});

test('w3c_didkey_K256.json: private key -> did:key', async (t) => {
  const vectors: { privateKeyBytesHex: string; publicDidKey: string }[] = readJson('w3c_didkey_K256.json');
  for (const v of vectors) {
    const key = await importSigningKey(v.privateKeyBytesHex, 'secp256k1');
    assert.equal(key.did(), v.publicDidKey);
    assert.equal(key.privateKeyHex(), v.privateKeyBytesHex.toLowerCase());
    assert.equal(parseDidKey(v.publicDidKey).algorithm, 'secp256k1');
  }
  assert.ok(vectors.length > 0);
  t.diagnostic(`K-256 did:key vectors run: ${vectors.length}`);
});

test('w3c_didkey_P256.json: private key -> did:key', async (t) => {
  const vectors: { privateKeyBytesBase58: string; publicDidKey: string }[] = readJson('w3c_didkey_P256.json');
  for (const v of vectors) {
    const key = await importSigningKey(fromBase58Btc(v.privateKeyBytesBase58), 'p256');
    assert.equal(key.did(), v.publicDidKey);
    assert.equal(key.jwtAlg, 'ES256');
    assert.equal(parseDidKey(v.publicDidKey).algorithm, 'p256');
  }
  assert.ok(vectors.length > 0);
  t.diagnostic(`P-256 did:key vectors run: ${vectors.length}`);
});

for (const algorithm of ['secp256k1', 'p256'] as KeyAlgorithm[]) {
  test(`${algorithm}: sign produces 64-byte low-S signatures that verify, and only for the signed data`, async () => {
    const key = await generateSigningKey(algorithm);
    assert.equal(key.algorithm, algorithm);
    const data = new TextEncoder().encode('portage signs this');
    for (let i = 0; i < 20; i++) {
      const sig = await key.sign(data);
      assert.equal(sig.length, 64);
      assert.ok(await verifySignature(key.did(), data, sig));
    }
    const sig = await key.sign(data);
    assert.equal(await verifySignature(key.did(), new TextEncoder().encode('something else'), sig), false);
    const other = await generateSigningKey(algorithm);
    assert.equal(await verifySignature(other.did(), data, sig), false);
    assert.equal(await verifySignature(key.did(), data, sig.subarray(0, 63)), false);
  });

  test(`${algorithm}: the high-S twin of a valid signature is rejected`, async () => {
    const key = await generateSigningKey(algorithm);
    const data = new Uint8Array([1, 2, 3]);
    const sig = await key.sign(data);
    const n = algorithm === 'p256' ? p256Order : k256Order;
    const high = withS(sig, n - readS(sig));
    assert.equal(await verifySignature(key.did(), data, high), false);
  });

  test(`${algorithm}: import round-trips bytes and hex, and agrees with @atproto/crypto`, async () => {
    const key = await generateSigningKey(algorithm);
    const again = await importSigningKey(key.privateKeyBytes(), algorithm);
    assert.equal(again.did(), key.did());
    assert.equal((await importSigningKey(key.privateKeyHex().toUpperCase(), algorithm)).did(), key.did());
    const ref =
      algorithm === 'p256'
        ? await reference.P256Keypair.import(key.privateKeyBytes())
        : await reference.Secp256k1Keypair.import(key.privateKeyBytes());
    assert.equal(ref.did(), key.did());
    const data = new TextEncoder().encode('cross-check');
    assert.ok(await reference.verifySignature(key.did(), data, await key.sign(data)));
    assert.ok(await verifySignature(key.did(), data, await ref.sign(data)));
  });

  test(`${algorithm}: formatDidKey accepts compressed and uncompressed points, parseDidKey inverts it`, async () => {
    const key = await generateSigningKey(algorithm);
    const { publicKey } = parseDidKey(key.did());
    assert.equal(publicKey.length, 33);
    assert.equal(formatDidKey(algorithm, publicKey), key.did());
    assert.equal(formatDidKey(algorithm, decompressPublicKey(algorithm, publicKey)), key.did());
  });
}

const k256Order = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const p256Order = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function readS(sig: Uint8Array): bigint {
  let s = 0n;
  for (let i = 32; i < 64; i++) s = (s << 8n) | BigInt(sig[i]!);
  return s;
}

function withS(sig: Uint8Array, s: bigint): Uint8Array {
  const out = sig.slice();
  for (let i = 63; i >= 32; i--) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return out;
}

test('bad keys and bad did:keys throw CryptoError naming the problem', async () => {
  await assert.rejects(importSigningKey('abc'), (e) => e instanceof CryptoError && /64 hexadecimal/.test(e.message));
  await assert.rejects(
    importSigningKey(new Uint8Array(31)),
    (e) => e instanceof CryptoError && /32 bytes/.test(e.message),
  );
  await assert.rejects(
    importSigningKey(new Uint8Array(32)),
    (e) => e instanceof CryptoError && /scalar/.test(e.message),
  );
  await assert.rejects(
    importSigningKey(new Uint8Array(32).fill(0xff)),
    (e) => e instanceof CryptoError && /scalar/.test(e.message),
  );
  const bad: [string, RegExp][] = [
    ['did:web:example.com', /not a did:key/],
    ['did:key:', /multibase/],
    ['did:key:Q3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme', /multibase/],
    ['did:key:z0OIl', /base58/],
    ['did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', /unsupported key type/], // ed25519
    [`did:key:z${toBase58Btc(new Uint8Array([0xe7, 0x01, 0x02, ...new Uint8Array(31).fill(1)]))}`, /33-byte/],
    [`did:key:z${toBase58Btc(new Uint8Array([0xe7, 0x01, 0x02, ...new Uint8Array(31).fill(0), 5]))}`, /not a point/],
  ];
  for (const [did, pattern] of bad) {
    assert.throws(
      () => parseDidKey(did),
      (e) => e instanceof CryptoError && pattern.test(e.message),
      did,
    );
    await assert.rejects(verifySignature(did, new Uint8Array(1), new Uint8Array(64)), CryptoError, did);
  }
  assert.throws(() => multikeyToDidKey('zzz'), CryptoError);
  assert.throws(() => formatDidKey('p256', new Uint8Array(33)), CryptoError);
  assert.throws(() => didKeyFromVerificationMethod('Ed25519VerificationKey2020', 'z6Mk'), CryptoError);
  assert.equal(algorithmForJwtAlg('ES256K'), 'secp256k1');
  assert.equal(algorithmForJwtAlg('ES256'), 'p256');
  assert.throws(() => algorithmForJwtAlg('RS256'), CryptoError);
});

test('a point that is not on the curve is rejected', () => {
  // x = 5 has no matching y on secp256k1 (5^3 + 7 = 132 is a non-residue mod p).
  const notOnCurve = new Uint8Array(33);
  notOnCurve[0] = 0x02;
  notOnCurve[32] = 5;
  assert.throws(() => formatDidKey('secp256k1', notOnCurve), CryptoError);
});
