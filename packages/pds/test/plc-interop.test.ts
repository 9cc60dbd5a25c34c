/**
 * Interop: the reference PDS (@atproto/dev-env TestPds), pointed at OUR directory, creates an
 * account and updates its handle; the DID then resolves through our directory (and through the
 * reference's own resolver reading our directory) with that PDS's endpoint and keys.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getAtprotoSigningKey, getHandle, getPdsEndpoint } from '@portage/atproto/identity/did-document';
import { generateSigningKey } from '@portage/atproto/crypto';
import { PlcClient, PlcError } from '@portage/atproto/plc/client';
import {
  cidForPlcOperation,
  createGenesisOperation,
  createTombstone,
  updateOperation,
} from '@portage/atproto/plc/operations';
import { verifyAuditLog, verifyOperationChain } from '@portage/atproto/plc/rules';
import { startReferencePds, startReferencePlc } from '../../../test/support/reference-peers.ts';
import { type RunningPlcDirectory, startPlcDirectory } from '../src/plc/server.ts';

let root: string;
let plc: RunningPlcDirectory;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the reference TestPds is only used loosely here
let pds: any;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- likewise the reference TestPlc
let referencePlc: any;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'portage-plc-interop-'));
  plc = await startPlcDirectory({ port: 0, dataDirectory: join(root, 'plc') });
  pds = await startReferencePds(root, plc.url, { inviteRequired: false });
  referencePlc = await startReferencePlc(root);
});

after(async () => {
  await pds?.close();
  await referencePlc?.close();
  await plc?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('reference PDS against the embedded PLC directory', () => {
  it('creates an account whose DID resolves through our directory with the PDS endpoint and keys', async () => {
    const agent = pds.getAgent();
    await agent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'hunter2-hunter2' });
    const did: string = agent.session.did;
    assert.match(did, /^did:plc:[a-z2-7]{24}$/);

    const client = new PlcClient(plc.url);
    const doc = await client.getDocument(did);
    assert.equal(doc.id, did);
    assert.equal(getPdsEndpoint(doc), pds.url);
    assert.equal(getHandle(doc), 'alice.test');
    const accountKey = await pds.ctx.actorStore.keypair(did);
    assert.equal(getAtprotoSigningKey(doc), accountKey.did());
    const data = await client.getDocumentData(did);
    assert.ok(data.rotationKeys.includes(pds.ctx.plcRotationKey.did()));

    // The PDS signs its own update operation; our directory accepts it.
    await agent.com.atproto.identity.updateHandle({ handle: 'alice2.test' });
    assert.equal(getHandle(await client.getDocument(did)), 'alice2.test');
    const ops = await client.getOperationLog(did);
    assert.equal(ops.length, 2);
    assert.equal((await verifyOperationChain(did, ops))?.alsoKnownAs[0], 'at://alice2.test');
    assert.equal((await verifyAuditLog(did, await client.getAuditLog(did)))?.did, did);

    // The reference's own resolver, reading our directory, agrees.
    const { IdResolver } = await import('@atproto/identity');
    const resolver = new IdResolver({ plcUrl: plc.url, fetch: globalThis.fetch });
    const atprotoData = await resolver.did.resolveAtprotoData(did, true);
    assert.equal(atprotoData.pds, pds.url);
    assert.equal(atprotoData.signingKey, accountKey.did());
    assert.equal(atprotoData.handle, 'alice2.test');
  });

  it('the same operations get the same answers from our directory and the reference one', async () => {
    const ours = new PlcClient(plc.url);
    const theirs = new PlcClient(referencePlc.url);
    const [rotation, signing] = await Promise.all([generateSigningKey(), generateSigningKey('p256')]);
    const { did, operation: genesis } = await createGenesisOperation({
      signingKeyDid: signing.did(),
      rotationKeys: [rotation.did()],
      handle: 'bob.test',
      pdsEndpoint: 'https://pds.example.com',
      rotationKey: rotation,
    });
    const update = await updateOperation(
      genesis,
      cidForPlcOperation(genesis),
      { alsoKnownAs: ['at://bob2.test'] },
      rotation,
    );
    for (const client of [ours, theirs]) {
      await client.submitOperation(did, genesis);
      await client.submitOperation(did, update);
    }
    assert.deepEqual(await ours.getDocumentData(did), await theirs.getDocumentData(did));
    assert.deepEqual(await ours.getOperationLog(did), await theirs.getOperationLog(did));
    assert.deepEqual(await ours.getLastOperation(did), await theirs.getLastOperation(did));
    const strip = (entries: { did: string; cid: string; nullified: boolean; operation: unknown }[]) =>
      entries.map(({ did, cid, nullified, operation }) => ({ did, cid, nullified, operation }));
    const theirAudit = await theirs.getAuditLog(did);
    assert.deepEqual(strip(await ours.getAuditLog(did)), strip(theirAudit));
    assert.equal((await verifyAuditLog(did, theirAudit))?.alsoKnownAs[0], 'at://bob2.test');

    // Both refuse an operation signed by a stranger, and both answer for unknown DIDs the same way.
    const stranger = await generateSigningKey();
    const forged = await updateOperation(update, cidForPlcOperation(update), {}, stranger);
    for (const client of [ours, theirs]) {
      await assert.rejects(client.submitOperation(did, forged), (err: unknown) => {
        assert.ok(err instanceof PlcError && err.code === 'Rejected' && err.status === 400, String(err));
        return true;
      });
      await assert.rejects(client.getDocument('did:plc:zzzzzzzzzzzzzzzzzzzzzzzz'), (err: unknown) => {
        assert.ok(err instanceof PlcError && err.code === 'NotFound' && err.status === 404, String(err));
        return true;
      });
    }

    // Tombstoned: both refuse the document (we answer 410 like plc.directory today; the installed
    // reference version still says 404) and still serve the log.
    const tomb = await createTombstone(cidForPlcOperation(update), rotation);
    for (const [client, statuses] of [
      [ours, [410]],
      [theirs, [404, 410]],
    ] as const) {
      await client.submitOperation(did, tomb);
      await assert.rejects(client.getDocument(did), (err: unknown) => {
        assert.ok(err instanceof PlcError && err.code === 'NotFound', String(err));
        assert.ok((statuses as readonly number[]).includes(err.status ?? 0), `status ${err.status}`);
        assert.match(err.message, /DID not available/);
        return true;
      });
      assert.deepEqual(await client.getLastOperation(did), tomb);
    }
  });
});
