/**
 * Portage -> Portage migration through the canonical client flow, with the PLC token read
 * from a real SMTP server, and every bad input of the flow refused with its own error while
 * the account stays as it was.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Bytes, fromBytes } from '@atcute/cbor';
import { AtpAgent, XRPCError } from '@atproto/api';
import { verifyRepoCar } from '@atproto/repo';
import { readCarBytes, writeCarBytes } from '@portage/atproto/car';
import { generateSigningKey } from '@portage/atproto/crypto';
import { formatCid } from '@portage/atproto/cid';
import { decodeCbor } from '@portage/atproto/data/index';
import { decodeCommit, signCommit, verifyCommitSignature } from '@portage/atproto/repo/commit';
import { mintServiceJwt } from '../src/auth/service-auth.ts';
import { decodeFrame } from '../src/sequencer/frames.ts';
import { startTestPds, type TestPds } from './harness.ts';
import { type Mailbox, startMailbox, tokenFromMail } from './mailbox.ts';
import { fillAccount, migrateAccount, snapshot } from './migration-flow.ts';

interface RecordedEvent {
  type: string;
  /** The event body without `seq` and `time`. */
  data: Record<string, unknown>;
}

/**
 * What the server's firehose log holds for `did` after this point, other than #commit
 * events (#identity, #account, #sync): read from its real sequencer on each call.
 */
function watchEvents(pds: TestPds, did: string): () => RecordedEvent[] {
  const from = pds.ctx.sequencer.lastSeq();
  return () =>
    pds.ctx.sequencer
      .readAfter(from, 10_000)
      .map((event) => decodeFrame(event.frame))
      .filter((frame) => frame.t !== '#commit' && frame.body.did === did)
      .map((frame) => {
        const { seq: _seq, time: _time, ...data } = frame.body;
        return { type: String(frame.t).slice(1), data };
      });
}

async function xrpcError(promise: Promise<unknown>): Promise<{ status: number; error: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof XRPCError, `expected an XRPC error, got ${String(err)}`);
    return { status: err.status, error: err.error, message: err.message };
  }
  assert.fail('the call succeeded but should have been refused');
}

describe('migration Portage -> Portage', () => {
  let mailbox: Mailbox;
  let oldPds: TestPds;
  let newPds: TestPds;
  const handle = 'alice.test';
  const email = 'alice@example.com';
  const password = 'alice-password-1';
  let oldAgent: AtpAgent;
  let did: string;

  before(async () => {
    mailbox = await startMailbox();
    oldPds = await startTestPds({ env: { PDS_EMAIL_SMTP_URL: mailbox.url, PDS_EMAIL_FROM_ADDRESS: 'pds@old.test' } });
    newPds = await startTestPds({ plcUrl: oldPds.plcUrl, env: { PDS_SERVICE_DID: 'did:web:portage-new.test' } });
    oldAgent = new AtpAgent({ service: oldPds.url });
    await oldAgent.createAccount({ handle, email, password });
    did = oldAgent.session!.did;
    await fillAccount(oldAgent, { records: 230, blobs: 6 });
    // Someone else on the old PDS, whose repository must never be accepted as Alice's.
    await new AtpAgent({ service: oldPds.url }).createAccount({
      handle: 'bob.test',
      email: 'bob@example.com',
      password,
    });
  });

  after(async () => {
    await newPds?.close();
    await oldPds?.close();
    await mailbox?.close();
  });

  it('refuses createAccount with a bad service JWT, each with its own error, creating nothing', async () => {
    const key = await oldPds.ctx.actorStore.getSigningKey(did);
    const wrongKey = await generateSigningKey();
    const aud = 'did:web:portage-new.test';
    const lxm = 'com.atproto.server.createAccount';
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, string][] = [
      [await mintServiceJwt({ iss: did, aud: 'did:web:elsewhere.test', lxm, key }), 'BadJwtAudience'],
      [await mintServiceJwt({ iss: did, aud, lxm, key, now: now - 600, exp: now - 300 }), 'JwtExpired'],
      [await mintServiceJwt({ iss: did, aud, lxm: 'com.atproto.repo.importRepo', key }), 'BadJwtLexiconMethod'],
      [await mintServiceJwt({ iss: did, aud, lxm, key: wrongKey }), 'BadJwtSignature'],
    ];
    const agent = new AtpAgent({ service: newPds.url });
    for (const [jwt, expected] of cases) {
      const err = await xrpcError(
        agent.com.atproto.server.createAccount(
          { did, handle, email, password },
          { headers: { authorization: `Bearer ${jwt}` }, encoding: 'application/json' },
        ),
      );
      assert.equal(err.status, 401);
      assert.equal(err.error, expected, err.message);
      assert.equal(newPds.ctx.accountManager.getAccount(did), undefined, 'no account was created');
    }
  });

  it('refuses a wrong or expired email token and a PLC operation dropping the new rotation key', async () => {
    await oldAgent.com.atproto.identity.requestPlcOperationSignature();
    const token = tokenFromMail(mailbox, email);
    const wrong = token === 'AAAAA-AAAAA' ? 'BBBBB-BBBBB' : 'AAAAA-AAAAA';
    const bad = await xrpcError(oldAgent.com.atproto.identity.signPlcOperation({ token: wrong }));
    assert.equal(bad.error, 'InvalidToken');
    // The token ages past its 15 minutes.
    oldPds.ctx.accountManager.db
      .prepare("UPDATE email_token SET requested_at = ? WHERE did = ? AND purpose = 'plc_operation'")
      .run(new Date(Date.now() - 16 * 60 * 1000).toISOString(), did);
    const expired = await xrpcError(oldAgent.com.atproto.identity.signPlcOperation({ token }));
    assert.equal(expired.error, 'ExpiredToken');
    const auditBefore = await oldPds.ctx.plcClient.getAuditLog(did);

    // A fresh token signs an operation that leaves the new PDS's rotation key out.
    await oldAgent.com.atproto.identity.requestPlcOperationSignature();
    const fresh = tokenFromMail(mailbox, email);
    const { data: signed } = await oldAgent.com.atproto.identity.signPlcOperation({
      token: fresh,
      rotationKeys: [(await generateSigningKey()).did()],
    });
    const reused = await xrpcError(oldAgent.com.atproto.identity.signPlcOperation({ token: fresh }));
    assert.equal(reused.error, 'InvalidToken', 'a token works once');

    const { data: auth } = await oldAgent.com.atproto.server.getServiceAuth({
      aud: 'did:web:portage-new.test',
      lxm: 'com.atproto.server.createAccount',
    });
    const newAgent = new AtpAgent({ service: newPds.url });
    await newAgent.com.atproto.server.createAccount(
      { did, handle, email, password },
      { headers: { authorization: `Bearer ${auth.token}` }, encoding: 'application/json' },
    );
    await newAgent.login({ identifier: did, password });
    const dropped = await xrpcError(newAgent.com.atproto.identity.submitPlcOperation({ operation: signed.operation }));
    assert.equal(dropped.error, 'InvalidRequest');
    assert.match(dropped.message, /rotation key/);
    assert.deepEqual(await oldPds.ctx.plcClient.getAuditLog(did), auditBefore, 'the DID is unchanged');

    // Activation before the DID points here says which check failed.
    const early = await xrpcError(newAgent.com.atproto.server.activateAccount());
    assert.equal(early.error, 'InvalidDidDocument');
    assert.match(early.message, /endpoint/);
  });

  it('refuses CARs for another DID, with a bad signature or a missing block, leaving the account as it was', async () => {
    const newAgent = new AtpAgent({ service: newPds.url });
    await newAgent.login({ identifier: did, password });
    const { data: statusBefore } = await newAgent.com.atproto.server.checkAccountStatus();

    const bob = oldPds.ctx.accountManager.getAccount('bob.test')!.did;
    const { data: bobCar } = await oldAgent.com.atproto.sync.getRepo({ did: bob });
    const { data: aliceCar } = await oldAgent.com.atproto.sync.getRepo({ did });
    const { roots, blocks } = await readCarBytes(aliceCar);
    const root = roots[0]!;
    const commitBlock = blocks.find((b) => b.cid.bytes.every((x, i) => x === root.bytes[i]))!;
    const commit = decodeCommit(commitBlock.bytes);
    const forged = await signCommit({ did, data: commit.data, rev: commit.rev }, await generateSigningKey());
    const badSignatureCar = await writeCarBytes(
      [forged.cid],
      [{ cid: forged.cid, bytes: forged.bytes }, ...blocks.filter((b) => b !== commitBlock)],
    );
    // Drop a record's block (one carrying $type): the tree is whole but a record is missing.
    // Dropping the last block instead would sometimes remove an MST node, depending on the tree.
    const recordBlock = blocks.find(
      (b) => b !== commitBlock && typeof (decodeCbor(b.bytes) as Record<string, unknown>).$type === 'string',
    )!;
    const missingBlockCar = await writeCarBytes(
      roots,
      blocks.filter((b) => b !== recordBlock),
    );

    const cases: [Uint8Array, string][] = [
      [bobCar, 'WrongDid'],
      [badSignatureCar, 'BadSignature'],
      [missingBlockCar, 'MissingRecord'],
    ];
    for (const [car, expected] of cases) {
      const err = await xrpcError(newAgent.com.atproto.repo.importRepo(car, { encoding: 'application/vnd.ipld.car' }));
      assert.equal(err.status, 400);
      assert.equal(err.error, expected, err.message);
      const { data: status } = await newAgent.com.atproto.server.checkAccountStatus();
      assert.deepEqual(status, statusBefore, 'the account is unchanged');
    }
  });

  it('moves the account with records, blobs and preferences, and re-signs the head with the new key', async () => {
    const before = await snapshot(oldAgent, did);
    assert.equal(before.records.size, 236);
    assert.equal(before.blobs.length, 6);
    const { data: oldHead } = await oldAgent.com.atproto.sync.getLatestCommit({ did });

    // createAccount already happened in the previous test (the account is deactivated there);
    // the flow must cope with it as a re-run: start over on a clean new account.
    await newPds.ctx.actorStore.destroy(did);
    newPds.ctx.accountManager.deleteAccount(did);
    // The deletion's #account leaves the outbox once its transaction has returned.
    await new Promise((resolve) => setImmediate(resolve));
    const events = watchEvents(newPds, did);

    const result = await migrateAccount({
      oldAgent,
      newServiceUrl: newPds.url,
      handle,
      email,
      password,
      readPlcToken: async () => tokenFromMail(mailbox, email),
    });
    assert.equal(result.blobsMoved, 6);
    const newAgent = result.newAgent;

    const after = await snapshot(newAgent, did);
    assert.deepEqual(after.records, before.records);
    assert.deepEqual(after.blobs, before.blobs);
    assert.deepEqual(after.preferences, before.preferences);

    const { data: status } = await newAgent.com.atproto.server.checkAccountStatus();
    assert.equal(status.activated, true);
    assert.equal(status.validDid, true);
    assert.equal(status.indexedRecords, 236);
    assert.equal(status.expectedBlobs, 6);
    assert.equal(status.importedBlobs, 6);
    assert.equal(status.privateStateValues, 1);
    assert.ok(status.repoBlocks > 236);

    // The head is ours: same tree, a newer rev, signed by the key the DID now names.
    const newKey = (await newPds.ctx.actorStore.getSigningKey(did)).did();
    const { data: newHead } = await newAgent.com.atproto.sync.getLatestCommit({ did });
    assert.notEqual(newHead.cid, oldHead.cid);
    assert.ok(newHead.rev > oldHead.rev);
    const { data: car } = await newAgent.com.atproto.sync.getRepo({ did });
    const verified = await verifyRepoCar(car, did, newKey);
    assert.equal(verified.creates.length, 236);

    // Announced: the identity change on submit, then on activation #identity, #account, and a
    // #sync carrying the re-signed head (the reference's would carry the old PDS's signature).
    const announced = events();
    assert.deepEqual(
      announced.map((e) => e.type),
      ['identity', 'identity', 'account', 'sync'],
    );
    assert.deepEqual(announced[1]!.data, { did, handle });
    assert.deepEqual(announced[2]!.data, { did, active: true });
    const sync = announced[3]!.data as { rev: string; blocks: Bytes };
    assert.equal(sync.rev, newHead.rev);
    const syncCar = await readCarBytes(fromBytes(sync.blocks));
    assert.equal(formatCid(syncCar.roots[0]!), newHead.cid);
    assert.equal(syncCar.blocks.length, 1, 'a #sync carries the commit block alone');
    assert.ok(await verifyCommitSignature(decodeCommit(syncCar.blocks[0]!.bytes), newKey));

    // The PLC log: genesis, then the migration, both accepted; the DID points at the new PDS.
    const audit = await newPds.ctx.plcClient.getAuditLog(did);
    assert.equal(audit.filter((e) => !e.nullified).length, 2);
    const doc = await newPds.ctx.plcClient.getDocumentData(did);
    assert.equal(doc.services.atproto_pds?.endpoint, newPds.publicUrl);
    assert.equal(doc.verificationMethods.atproto, newKey);
    assert.ok(doc.rotationKeys.includes(newPds.ctx.plcRotationKey.did()));

    // The old side is deactivated but its owner still reads there.
    const { data: session } = await oldAgent.com.atproto.server.getSession();
    assert.equal(session.active, false);
    assert.equal(session.status, 'deactivated');
    const { data: listed } = await oldAgent.com.atproto.repo.listRecords({
      repo: did,
      collection: 'app.bsky.feed.post',
      limit: 5,
    });
    assert.equal(listed.records.length, 5);
    const { data: prefs } = await oldAgent.app.bsky.actor.getPreferences();
    assert.deepEqual(prefs.preferences, before.preferences);
    assert.notEqual(oldPds.ctx.accountManager.getAccount(did)?.deactivatedAt, null);
  });

  it('records deleteAfter on deactivation and re-imports safely', async () => {
    const agent = new AtpAgent({ service: newPds.url });
    await agent.login({ identifier: did, password });
    const deleteAfter = new Date(Date.now() + 7 * 24 * 3600 * 1000).toISOString();
    const events = watchEvents(newPds, did);
    await agent.com.atproto.server.deactivateAccount({ deleteAfter });
    assert.deepEqual(events(), [{ type: 'account', data: { did, active: false, status: 'deactivated' } }]);
    assert.equal(newPds.ctx.accountManager.getAccount(did)?.deleteAfter, deleteAfter);
    // The repository as it stands (sync reads of a deactivated repository are refused).
    const full: Uint8Array[] = [];
    for await (const chunk of newPds.ctx.actorStore.exportCar(did)) full.push(chunk);
    const bytes = Buffer.concat(full);
    await agent.com.atproto.repo.importRepo(bytes, { encoding: 'application/vnd.ipld.car' });
    await agent.com.atproto.repo.importRepo(bytes, { encoding: 'application/vnd.ipld.car' });
    const { data: status } = await agent.com.atproto.server.checkAccountStatus();
    assert.equal(status.indexedRecords, 236);
    assert.equal(status.importedBlobs, 6);
    await agent.com.atproto.server.activateAccount();
    const { data: reactivated } = await agent.com.atproto.server.checkAccountStatus();
    assert.equal(reactivated.activated, true);
    assert.equal(newPds.ctx.accountManager.getAccount(did)?.deleteAfter, null);
  });
});
