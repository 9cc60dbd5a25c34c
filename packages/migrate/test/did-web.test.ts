/**
 * A did:web account moves between two Portage PDSes. Nobody can sign a change to a did:web
 * document but its owner, so the engine stops at the identity step with the exact did.json to
 * publish; the owner publishes it (here: the test's own web server on loopback) and runs again,
 * and the engine checks the document before it activates the new account.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { verifyRepoCar } from '@atproto/repo';
import { cidForRaw, formatCid } from '@portage/atproto/cid';
import { didKeyToMultikey } from '@portage/atproto/crypto';
import type { DidDocument } from '@portage/atproto/identity/did-document';
import { startTestPds, type TestPds } from '../../pds/test/harness.ts';
import { migrate, type MigrationResult } from '../src/engine.ts';
import type { MigrationEvent } from '../src/events.ts';
import { MemoryStorage } from '../src/storage.ts';
import { createDidWebAccount, type DidWebHost, startDidWebHost } from './helpers/did-web-host.ts';

let oldPds: TestPds;
let newPds: TestPds;
let didHost: DidWebHost;
let did: string;

before(async () => {
  oldPds = await startTestPds({ env: { PDS_SERVICE_DID: 'did:web:old-pds.test' } });
  newPds = await startTestPds({ plcUrl: oldPds.plcUrl, env: { PDS_SERVICE_DID: 'did:web:new-pds.test' } });
  didHost = await startDidWebHost();
  did = didHost.did;
});

after(async () => {
  await didHost?.close();
  await newPds?.close();
  await oldPds?.close();
});

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
    const agent = await createDidWebAccount(didHost, oldPds, 'did:web:old-pds.test', password);
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
    assert.deepEqual(wanted.alsoKnownAs, didHost.published!.alsoKnownAs);

    // Running again before publishing changes nothing and says the same.
    const early = await run(storage, password);
    assert.equal(early.result.status, 'failed');
    await neuLogin.login({ identifier: did, password });
    assert.equal(neuLogin.session?.active, false);

    // The owner publishes the document; the next run verifies it and finishes.
    didHost.published = wanted;
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
