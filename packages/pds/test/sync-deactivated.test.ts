/**
 * Sync reads of a deactivated account: its owner (an access token for that DID) and the admin
 * (Basic admin:<password>) still read the repository and blobs, as the reference allows, so an
 * account can be backed up or moved while deactivated; anyone else gets RepoDeactivated.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { verifyRepoCar } from '@atproto/repo';
import { startTestPds, type TestPds } from './harness.ts';
import { PNG, postPicture } from './picture-post.ts';

describe('sync reads of a deactivated account', () => {
  let pds: TestPds;
  let alice: AtpAgent;
  let bob: AtpAgent;
  let did: string;
  let blobCid: string;
  let recordRkey: string;
  let signingKey: string;

  before(async () => {
    pds = await startTestPds();
    alice = new AtpAgent({ service: pds.url });
    bob = new AtpAgent({ service: pds.url });
    await alice.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: 'alice password' });
    await bob.createAccount({ handle: 'bob.test', email: 'bob@example.com', password: 'bob password' });
    did = alice.session!.did;
    const picture = await postPicture(alice);
    blobCid = picture.blobCid;
    recordRkey = picture.uri.split('/').pop()!;
    const doc = (await (await fetch(`${pds.plcUrl}/${did}`)).json()) as {
      verificationMethod: { id: string; publicKeyMultibase: string }[];
    };
    signingKey = `did:key:${doc.verificationMethod.find((m) => m.id.endsWith('#atproto'))!.publicKeyMultibase}`;
    await alice.com.atproto.server.deactivateAccount({});
  });
  after(async () => {
    await pds?.close();
  });

  const owner = () => ({ authorization: `Bearer ${alice.session!.accessJwt}` });
  const otherUser = () => ({ authorization: `Bearer ${bob.session!.accessJwt}` });
  const admin = (password = pds.ctx.config.adminPassword) => ({
    authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`,
  });

  /** Every sync read the owner and admin keep, as path and query. */
  const reads = (): [string, Record<string, string>][] => [
    ['com.atproto.sync.getRepo', { did }],
    ['com.atproto.sync.getBlob', { did, cid: blobCid }],
    ['com.atproto.sync.listBlobs', { did }],
    ['com.atproto.sync.getLatestCommit', { did }],
    ['com.atproto.sync.getRecord', { did, collection: 'app.bsky.feed.post', rkey: recordRkey }],
  ];

  function get(nsid: string, query: Record<string, string>, headers: Record<string, string> = {}) {
    return fetch(`${pds.url}/xrpc/${nsid}?${new URLSearchParams(query)}`, { headers });
  }

  it('refuses anonymous callers and other accounts with RepoDeactivated', async () => {
    for (const headers of [{}, otherUser()]) {
      for (const [nsid, query] of reads()) {
        const res = await get(nsid, query, headers);
        assert.equal(res.status, 400, nsid);
        const body = (await res.json()) as { error: string; message: string };
        assert.equal(body.error, 'RepoDeactivated', nsid);
        assert.equal(body.message, `Repo has been deactivated: ${did}`);
      }
    }
  });

  it("serves the owner's repository, blob and the other sync reads", async () => {
    const repo = await get('com.atproto.sync.getRepo', { did }, owner());
    assert.equal(repo.status, 200);
    const verified = await verifyRepoCar(new Uint8Array(await repo.arrayBuffer()), did, signingKey);
    assert.deepEqual(
      verified.creates.map((w) => `${w.collection}/${w.rkey}`),
      [`app.bsky.feed.post/${recordRkey}`],
    );
    const blob = await get('com.atproto.sync.getBlob', { did, cid: blobCid }, owner());
    assert.equal(blob.status, 200);
    assert.equal(blob.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), PNG);
    const listed = (await (await get('com.atproto.sync.listBlobs', { did }, owner())).json()) as { cids: string[] };
    assert.deepEqual(listed.cids, [blobCid]);
    for (const [nsid, query] of reads()) assert.equal((await get(nsid, query, owner())).status, 200, nsid);
  });

  it('serves the admin, and refuses a wrong admin password', async () => {
    const repo = await get('com.atproto.sync.getRepo', { did }, admin());
    assert.equal(repo.status, 200);
    await verifyRepoCar(new Uint8Array(await repo.arrayBuffer()), did, signingKey);
    const blob = await get('com.atproto.sync.getBlob', { did, cid: blobCid }, admin());
    assert.equal(blob.status, 200);
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), PNG);
    for (const [nsid, query] of reads()) assert.equal((await get(nsid, query, admin())).status, 200, nsid);
    const wrong = await get('com.atproto.sync.getRepo', { did }, admin('not the password'));
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: string }).error, 'AuthenticationRequired');
  });

  it('refuses a malformed token instead of treating the caller as anonymous', async () => {
    const res = await get('com.atproto.sync.getRepo', { did }, { authorization: 'Bearer not-a-jwt' });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: string }).error, 'InvalidToken');
  });

  it('serves everyone again once the account is reactivated', async () => {
    await alice.com.atproto.server.activateAccount();
    for (const [nsid, query] of reads()) assert.equal((await get(nsid, query)).status, 200, nsid);
  });
});
