import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { generateSigningKey } from '@portage/atproto/crypto';
import { createGenesisOperation } from '@portage/atproto/plc/operations';
import { PlcClient } from '@portage/atproto/plc/client';
import { mintServiceJwt } from '../src/auth/service-auth.ts';
import { startTestPds, type TestPds } from './harness.ts';
import { rejects } from './xrpc-assert.ts';

describe('invite codes, custom handles and sign-up with an existing DID', () => {
  let pds: TestPds;
  // DNS TXT answers the test PDS sees; filled in as the tests go.
  const txt: Record<string, string[]> = {};
  const password = 'invite-test-password';
  const basic = () => `Basic ${Buffer.from(`admin:${pds.ctx.config.adminPassword}`).toString('base64')}`;
  const admin = (nsid: string, body: unknown, authorization = basic()) =>
    fetch(`${pds.url}/xrpc/${nsid}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization },
      body: JSON.stringify(body),
    });
  const accounts = () =>
    (pds.ctx.accountManager.db.prepare('SELECT count(*) AS n FROM account').get() as { n: number }).n;

  before(async () => {
    pds = await startTestPds({
      env: { PDS_INVITE_REQUIRED: 'true' },
      txtRecords: txt,
    });
  });
  after(async () => {
    await pds.close();
  });

  it('requires an invite code and consumes it once', async () => {
    const describe = await new AtpAgent({ service: pds.url }).com.atproto.server.describeServer();
    assert.equal(describe.data.inviteCodeRequired, true);
    await rejects(
      new AtpAgent({ service: pds.url }).createAccount({ handle: 'nocode.test', email: 'n@example.com', password }),
      400,
      'InvalidInviteCode',
    );
    await rejects(
      new AtpAgent({ service: pds.url }).createAccount({
        handle: 'nocode.test',
        email: 'n@example.com',
        password,
        inviteCode: 'made-up-code',
      }),
      400,
      'InvalidInviteCode',
    );
    assert.equal(accounts(), 0);

    const res = await admin('com.atproto.server.createInviteCode', { useCount: 1 });
    assert.equal(res.status, 200);
    const { code } = await res.json();
    const alice = new AtpAgent({ service: pds.url });
    await alice.createAccount({ handle: 'alice.test', email: 'alice@example.com', password, inviteCode: code });
    await rejects(
      new AtpAgent({ service: pds.url }).createAccount({
        handle: 'bob.test',
        email: 'bob@example.com',
        password,
        inviteCode: code,
      }),
      400,
      'InvalidInviteCode',
    );
    assert.equal(accounts(), 1);
  });

  it('lets only the admin create codes, and shows an account its codes and their uses', async () => {
    const denied = await admin('com.atproto.server.createInviteCode', { useCount: 1 }, 'Basic YWRtaW46d3Jvbmc=');
    assert.equal(denied.status, 401);
    const alice = new AtpAgent({ service: pds.url });
    await alice.login({ identifier: 'alice.test', password });
    const batch = await admin('com.atproto.server.createInviteCodes', {
      codeCount: 2,
      useCount: 3,
      forAccounts: [alice.session!.did],
    });
    const { codes } = await batch.json();
    assert.equal(codes[0].codes.length, 2);
    await new AtpAgent({ service: pds.url }).createAccount({
      handle: 'carol.test',
      email: 'carol@example.com',
      password,
      inviteCode: codes[0].codes[0],
    });
    const mine = await alice.com.atproto.server.getAccountInviteCodes();
    assert.equal(mine.data.codes.length, 2);
    const used = mine.data.codes.find((c) => c.code === codes[0].codes[0])!;
    assert.equal(used.available, 2);
    assert.equal(used.uses.length, 1);
    assert.equal(used.forAccount, alice.session!.did);
    const badCount = await admin('com.atproto.server.createInviteCode', { useCount: 0 });
    assert.equal(badCount.status, 400);
  });

  it('resolves a custom-domain handle by DNS TXT, and updates to it only when it points at the account', async () => {
    const alice = new AtpAgent({ service: pds.url });
    await alice.login({ identifier: 'alice.test', password });
    const did = alice.session!.did;
    // Not pointing anywhere yet: refused, nothing changes.
    await rejects(alice.com.atproto.identity.updateHandle({ handle: 'alice.example.com' }), 400, 'InvalidRequest');
    await rejects(alice.com.atproto.identity.resolveHandle({ handle: 'alice.example.com' }), 400, 'HandleNotFound');
    const plcLog = async () => (await new PlcClient(pds.plcUrl).getAuditLog(did)).length;
    assert.equal(await plcLog(), 1);

    txt['_atproto.alice.example.com'] = [`did=${did}`];
    await alice.com.atproto.identity.updateHandle({ handle: 'alice.example.com' });
    assert.equal(await plcLog(), 2);
    const doc = await new PlcClient(pds.plcUrl).getDocument(did);
    assert.deepEqual(doc.alsoKnownAs, ['at://alice.example.com']);
    assert.equal((await alice.com.atproto.identity.resolveHandle({ handle: 'alice.example.com' })).data.did, did);

    // A handle hosted nowhere near us resolves through DNS too.
    txt['_atproto.someone.example.org'] = ['did=did:plc:ewvi7nxzyoun6zhxrhs64oiz'];
    const other = await alice.com.atproto.identity.resolveHandle({ handle: 'someone.example.org' });
    assert.equal(other.data.did, 'did:plc:ewvi7nxzyoun6zhxrhs64oiz');
  });

  it('creates a deactivated account for an existing DID only with that DID’s service JWT', async () => {
    // A DID registered elsewhere (here: straight in the PLC directory) by a key the user holds.
    const userKey = await generateSigningKey('secp256k1');
    const { did, operation } = await createGenesisOperation({
      signingKeyDid: userKey.did(),
      rotationKeys: [userKey.did()],
      handle: 'mover.test',
      pdsEndpoint: 'https://old-pds.example',
      rotationKey: userKey,
    });
    await new PlcClient(pds.plcUrl).submitOperation(did, operation);
    const codeRes = await admin('com.atproto.server.createInviteCode', { useCount: 5 });
    const { code } = await codeRes.json();
    const input = { did, handle: 'mover.test', email: 'mover@example.com', password, inviteCode: code };
    const call = (authorization?: string) =>
      fetch(`${pds.url}/xrpc/com.atproto.server.createAccount`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        body: JSON.stringify(input),
      });
    const before = accounts();
    const noAuth = await call();
    assert.equal(noAuth.status, 401);
    const wrongMethod = await mintServiceJwt({
      iss: did,
      aud: pds.ctx.config.serviceDid,
      lxm: 'com.atproto.repo.createRecord',
      key: userKey,
    });
    const wrong = await call(`Bearer ${wrongMethod}`);
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).error, 'BadJwtLexiconMethod');
    const otherKey = await generateSigningKey('secp256k1');
    const forged = await mintServiceJwt({
      iss: did,
      aud: pds.ctx.config.serviceDid,
      lxm: 'com.atproto.server.createAccount',
      key: otherKey,
    });
    const bad = await call(`Bearer ${forged}`);
    assert.equal(bad.status, 401);
    assert.equal((await bad.json()).error, 'BadJwtSignature');
    assert.equal(accounts(), before, 'nothing was created by the refused attempts');

    const token = await mintServiceJwt({
      iss: did,
      aud: pds.ctx.config.serviceDid,
      lxm: 'com.atproto.server.createAccount',
      key: userKey,
    });
    const ok = await call(`Bearer ${token}`);
    assert.equal(ok.status, 200);
    const body = await ok.json();
    assert.equal(body.did, did);
    const account = pds.ctx.accountManager.getAccount(did)!;
    assert.ok(account.deactivatedAt, 'an imported account starts deactivated');
    const session = new AtpAgent({ service: pds.url });
    const login = await session.login({ identifier: 'mover.test', password });
    assert.equal(login.data.active, false);
    assert.equal(login.data.status, 'deactivated');
    const log = await new PlcClient(pds.plcUrl).getAuditLog(did);
    assert.equal(log.length, 1, 'no PLC operation was made for a brought DID');
  });
});
