/**
 * A did:web account moves between two Portage PDSes. Nobody can sign a change to a did:web
 * document but its owner, so the engine stops at the identity step with the exact did.json to
 * publish; the owner publishes it (here: the test's own web server on loopback) and runs again,
 * and the engine checks the document before it activates the new account.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { verifyRepoCar } from '@atproto/repo';
import { cidForRaw, formatCid } from '@portage/atproto/cid';
import { didKeyToMultikey, generateSigningKey } from '@portage/atproto/crypto';
import type { DidDocument } from '@portage/atproto/identity/did-document';
import { mintServiceJwt } from '../../pds/src/auth/service-auth.ts';
import { startTestPds, type TestPds } from '../../pds/test/harness.ts';
import { migrate, type MigrationResult } from '../src/engine.ts';
import type { MigrationEvent } from '../src/events.ts';
import { MemoryStorage } from '../src/storage.ts';

let oldPds: TestPds;
let newPds: TestPds;
let didHost: Server;
/** The document the did:web host serves right now: what the owner has published. */
let published: DidDocument;
let did: string;

before(async () => {
  oldPds = await startTestPds({ env: { PDS_SERVICE_DID: 'did:web:old-pds.test' } });
  newPds = await startTestPds({ plcUrl: oldPds.plcUrl, env: { PDS_SERVICE_DID: 'did:web:new-pds.test' } });
  didHost = createServer((req, res) => {
    if (req.url !== '/.well-known/did.json') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(published));
  });
  await new Promise<void>((resolve) => didHost.listen(0, '127.0.0.1', resolve));
  const { port } = didHost.address() as { port: number };
  // atproto allows a port in did:web only for localhost, which is served over plain http.
  did = `did:web:localhost%3A${port}`;
});

after(async () => {
  await new Promise((resolve) => didHost?.close(resolve));
  await newPds?.close();
  await oldPds?.close();
});

function documentFor(pdsEndpoint: string, signingKeyDid: string): DidDocument {
  return {
    '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
    id: did,
    alsoKnownAs: ['at://webby.test'],
    verificationMethod: [
      { id: `${did}#atproto`, type: 'Multikey', controller: did, publicKeyMultibase: didKeyToMultikey(signingKeyDid) },
    ],
    service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: pdsEndpoint }],
  };
}

/** The records of the account's repo (collection/rkey -> CID), from a full CAR export, verified. */
async function repoRecords(pds: TestPds): Promise<Map<string, string>> {
  const res = await fetch(`${pds.url}/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(did)}`);
  assert.equal(res.status, 200, `getRepo: ${await res.clone().text()}`);
  const repo = await verifyRepoCar(new Uint8Array(await res.arrayBuffer()), did);
  return new Map(repo.creates.map((c) => [`${c.collection}/${c.rkey}`, c.cid.toString()]));
}

async function recommendedSigningKey(pds: TestPds, accessJwt: string): Promise<string> {
  const res = await fetch(`${pds.url}/xrpc/com.atproto.identity.getRecommendedDidCredentials`, {
    headers: { authorization: `Bearer ${accessJwt}` },
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { verificationMethods: { atproto: string } };
  return body.verificationMethods.atproto;
}

/** The owner's own key creates the account on the old PDS, as a did:web owner does when first moving in. */
async function createWebAccountOnOldPds(password: string): Promise<AtpAgent> {
  const ownerKey = await generateSigningKey('secp256k1');
  published = documentFor(oldPds.publicUrl, ownerKey.did());
  const serviceJwt = await mintServiceJwt({
    iss: did,
    aud: 'did:web:old-pds.test',
    lxm: 'com.atproto.server.createAccount',
    key: ownerKey,
  });
  const created = await fetch(`${oldPds.url}/xrpc/com.atproto.server.createAccount`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${serviceJwt}` },
    body: JSON.stringify({ did, handle: 'webby.test', email: 'webby@example.com', password }),
  });
  assert.equal(created.status, 200, await created.clone().text());
  const { accessJwt } = (await created.json()) as { accessJwt: string };
  // The account starts deactivated until the document names this PDS and its signing key.
  published = documentFor(oldPds.publicUrl, await recommendedSigningKey(oldPds, accessJwt));
  const activated = await fetch(`${oldPds.url}/xrpc/com.atproto.server.activateAccount`, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessJwt}` },
  });
  assert.equal(activated.status, 200, await activated.clone().text());

  const agent = new AtpAgent({ service: oldPds.url });
  await agent.login({ identifier: did, password });
  return agent;
}

async function run(
  storage: MemoryStorage,
  password: string,
): Promise<{ result: MigrationResult; events: MigrationEvent[] }> {
  const events: MigrationEvent[] = [];
  const result = await migrate(
    { from: did, fromPds: oldPds.url, to: newPds.url, plcUrl: oldPds.plcUrl, concurrency: 4 },
    {
      storage,
      credentials: {
        oldPassword: async () => password,
        newPassword: async () => password,
        authFactorToken: async () => undefined,
        plcToken: async () => undefined,
      },
      onEvent: (e) => events.push(e),
    },
  );
  return { result, events };
}

describe('migrating a did:web account', () => {
  it('stops with the did.json to publish, then finishes once it is published', async () => {
    const password = 'webby-password';
    const agent = await createWebAccountOnOldPds(password);
    for (let i = 0; i < 30; i++) {
      await agent.com.atproto.repo.createRecord({
        repo: did,
        collection: 'com.example.note',
        validate: false,
        record: { $type: 'com.example.note', text: `note ${i}`, createdAt: new Date().toISOString() },
      });
    }
    const blobBytes = crypto.getRandomValues(new Uint8Array(40_000));
    const { data } = await agent.com.atproto.repo.uploadBlob(blobBytes, { encoding: 'image/png' });
    await agent.com.atproto.repo.createRecord({
      repo: did,
      collection: 'com.example.file',
      validate: false,
      record: { $type: 'com.example.file', file: data.blob, createdAt: new Date().toISOString() },
    });
    const before = await repoRecords(oldPds);
    assert.equal(before.size, 31);

    // First run: everything moves, then the engine cannot change the document itself.
    const storage = new MemoryStorage();
    const first = await run(storage, password);
    assert.equal(first.result.status, 'failed', first.result.message);
    assert.match(first.result.message, /does not name .* with the new signing key yet/);
    const notice = first.events.find((e) => e.type === 'notice' && e.step === 'identity');
    assert.ok(notice && notice.type === 'notice', 'the engine shows the document to publish');
    const wanted = JSON.parse(notice.message.slice(notice.message.indexOf('\n') + 1)) as DidDocument;
    // The new account exists, filled, but stays inactive: nothing irreversible happened.
    const oldLogin = new AtpAgent({ service: oldPds.url });
    await oldLogin.login({ identifier: did, password });
    assert.equal(oldLogin.session?.active, true, 'the old account is still active');
    const neuLogin = new AtpAgent({ service: newPds.url });
    await neuLogin.login({ identifier: did, password });
    assert.equal(neuLogin.session?.active, false, 'the new account waits, deactivated');

    // The document asked for names the new PDS and the signing key it recommends, and keeps the rest.
    const newKey = await recommendedSigningKey(newPds, neuLogin.session!.accessJwt);
    assert.deepEqual(wanted.service, [
      { id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: newPds.publicUrl },
    ]);
    assert.deepEqual(
      wanted.verificationMethod?.map((m) => m.publicKeyMultibase),
      [didKeyToMultikey(newKey)],
    );
    assert.deepEqual(wanted.alsoKnownAs, published.alsoKnownAs);

    // Running again before publishing changes nothing and says the same.
    const early = await run(storage, password);
    assert.equal(early.result.status, 'failed');
    await neuLogin.login({ identifier: did, password });
    assert.equal(neuLogin.session?.active, false);

    // The owner publishes the document; the next run verifies it and finishes.
    published = wanted;
    const second = await run(storage, password);
    assert.equal(second.result.status, 'done', second.result.message);

    assert.deepEqual([...(await repoRecords(newPds))].sort(), [...before].sort(), 'the same records');
    const blob = await fetch(
      `${newPds.url}/xrpc/com.atproto.sync.getBlob?did=${encodeURIComponent(did)}&cid=${data.blob.ref.toString()}`,
    );
    assert.equal(blob.status, 200);
    assert.equal(formatCid(cidForRaw(new Uint8Array(await blob.arrayBuffer()))), data.blob.ref.toString());
    await neuLogin.login({ identifier: did, password });
    assert.equal(neuLogin.session?.active, true, 'the new account is active');
    const status = await neuLogin.com.atproto.server.checkAccountStatus();
    assert.equal(status.data.validDid, true);
    await oldLogin.login({ identifier: did, password });
    assert.equal(oldLogin.session?.active, false, 'the old account is deactivated');
  });
});
