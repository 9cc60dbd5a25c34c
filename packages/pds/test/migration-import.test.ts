/**
 * importRepo on the actor store's own connection: an import that fails anywhere in the tree
 * leaves the previous repository exactly as it was, and after a successful import the store
 * serves the new repository only (no block of the replaced one from its caches, the shared
 * root index on the new commit).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AtpAgent, XRPCError } from '@atproto/api';
import { readCarBytes, writeCarBytes } from '@portage/atproto/car';
import { type Cid, formatCid, parseCid } from '@portage/atproto/cid';
import { importRepo } from '@portage/atproto/repo/import';
import { startTestPds, type TestPds } from './harness.ts';
import { fillAccount } from './migration-flow.ts';

const password = 'alice-password-1';

async function importError(agent: AtpAgent, car: Uint8Array): Promise<{ status: number; error: string }> {
  try {
    await agent.com.atproto.repo.importRepo(car, { encoding: 'application/vnd.ipld.car' });
  } catch (err) {
    assert.ok(err instanceof XRPCError, String(err));
    return { status: err.status, error: err.error ?? '' };
  }
  assert.fail('the import was accepted');
}

describe('importRepo replaces the repository atomically, on the actor store connection', () => {
  let oldPds: TestPds;
  let newPds: TestPds;
  let oldAgent: AtpAgent;
  let newAgent: AtpAgent;
  let did: string;

  before(async () => {
    oldPds = await startTestPds();
    newPds = await startTestPds({ plcUrl: oldPds.plcUrl, env: { PDS_SERVICE_DID: 'did:web:portage-new.test' } });
    oldAgent = new AtpAgent({ service: oldPds.url });
    await oldAgent.createAccount({ handle: 'alice.test', email: 'alice@example.com', password });
    did = oldAgent.session!.did;
    await fillAccount(oldAgent, { records: 400, blobs: 3 });
    const { data: auth } = await oldAgent.com.atproto.server.getServiceAuth({
      aud: 'did:web:portage-new.test',
      lxm: 'com.atproto.server.createAccount',
    });
    newAgent = new AtpAgent({ service: newPds.url });
    await newAgent.com.atproto.server.createAccount(
      { did, handle: 'alice.test', email: 'alice@example.com', password },
      { headers: { authorization: `Bearer ${auth.token}` }, encoding: 'application/json' },
    );
    await newAgent.login({ identifier: did, password });
  });

  after(async () => {
    await newPds?.close();
    await oldPds?.close();
  });

  async function exportOld(): Promise<Uint8Array> {
    const { data } = await oldAgent.com.atproto.sync.getRepo({ did });
    return data;
  }

  it('serves the imported repository only: no block of the replaced one, root index on the new commit', async () => {
    const store = newPds.ctx.actorStore;
    const created = store.getRoot(did)!;
    // Read the first commit through the store, so its block cache holds it.
    assert.equal(store.getBlocks(did, [created.cid]).found.length, 1);

    // One blob arrives before the records that reference it: a temporary upload until the import.
    const { data: listed } = await oldAgent.com.atproto.sync.listBlobs({ did });
    const early = listed.cids[0]!;
    const { data: earlyBytes } = await oldAgent.com.atproto.sync.getBlob({ did, cid: early });
    const { data: uploaded } = await newAgent.com.atproto.repo.uploadBlob(earlyBytes, { encoding: 'image/png' });
    const earlyCid = parseCid(early);
    assert.equal(uploaded.blob.ref.toString(), early);
    assert.equal(store.getBlobInfo(did, earlyCid)?.temporary, true);

    const car = await exportOld();
    await newAgent.com.atproto.repo.importRepo(car, { encoding: 'application/vnd.ipld.car' });
    assert.equal(store.getBlobInfo(did, earlyCid)?.temporary, false, 'the import made the early upload permanent');
    const imported = (await readCarBytes(car)).roots[0]!;
    assert.equal(formatCid(store.getRoot(did)!.cid), formatCid(imported));
    assert.equal(formatCid(store.getRootIndexed(did)!.cid), formatCid(imported), 'the shared root index follows');
    assert.deepEqual(
      store.getBlocks(did, [created.cid]).missing.map(formatCid),
      [formatCid(created.cid)],
      'the replaced commit is gone, from the cache too',
    );
    assert.equal(store.countRecords(did), 403);
    const { data: status } = await newAgent.com.atproto.server.checkAccountStatus();
    assert.equal(status.repoCommit, formatCid(imported));
    assert.equal(status.indexedRecords, 403);
    assert.equal(status.expectedBlobs, 3);
    assert.equal(status.importedBlobs, 1);
    const { data: missing } = await newAgent.com.atproto.repo.listMissingBlobs({ limit: 10 });
    assert.deepEqual(
      missing.blobs.map((b) => b.cid),
      listed.cids.filter((cid) => cid !== early).sort(),
    );
  });

  it('rolls back an import whose last record is missing, leaving the previous repository as it was', async () => {
    const store = newPds.ctx.actorStore;
    const { data: statusBefore } = await newAgent.com.atproto.server.checkAccountStatus();
    const rootBefore = store.getRoot(did)!;
    const firstPage = store.listRecords(did, 'app.bsky.feed.post', { limit: 50 });

    // The old side moves on; its new export lacks the block of the record that comes last in
    // key order, so the walk fails only after every other node and record was written.
    await oldAgent.com.atproto.repo.createRecord({
      repo: did,
      collection: 'app.bsky.feed.post',
      rkey: 'jzzzzzzzzzzzz',
      record: { $type: 'app.bsky.feed.post', text: 'after the first import', createdAt: new Date().toISOString() },
    });
    const car = await exportOld();
    const records = [...(await importRepo([car], { signingKeys: null })).records()];
    const last = records.at(-1)!;
    assert.equal(last.rkey, 'jzzzzzzzzzzzz');
    const { roots, blocks } = await readCarBytes(car);
    const sameCid = (a: Cid, b: Cid) => formatCid(a) === formatCid(b);
    const broken = await writeCarBytes(
      roots,
      blocks.filter((b) => !sameCid(b.cid, last.cid)),
    );

    const err = await importError(newAgent, broken);
    assert.deepEqual(err, { status: 400, error: 'MissingRecord' });
    const { data: statusAfter } = await newAgent.com.atproto.server.checkAccountStatus();
    assert.deepEqual(statusAfter, statusBefore, 'the account is unchanged');
    assert.equal(formatCid(store.getRoot(did)!.cid), formatCid(rootBefore.cid));
    assert.equal(formatCid(store.getRootIndexed(did)!.cid), formatCid(rootBefore.cid));
    assert.deepEqual(store.listRecords(did, 'app.bsky.feed.post', { limit: 50 }), firstPage);
    assert.equal(store.getRecord(did, 'app.bsky.feed.post', 'jzzzzzzzzzzzz'), undefined);

    // The whole export goes in, replacing the repository.
    await newAgent.com.atproto.repo.importRepo(car, { encoding: 'application/vnd.ipld.car' });
    assert.equal(store.countRecords(did), 404);
    assert.equal(formatCid(store.getRoot(did)!.cid), formatCid(roots[0]!));
    assert.equal(store.getBlocks(did, [rootBefore.cid]).missing.length, 1, 'the previous commit is gone');
  });
});
