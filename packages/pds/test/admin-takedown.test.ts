/**
 * Takedowns through the admin API, as @atproto/api sends them: an account (sign-in, sync reads,
 * getRecord, getBlob refused with the reference's errors; #account takendown seen by
 * @atproto/sync's Firehose consumer), one record and one blob; each restored, after which all
 * of it works again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { IdResolver } from '@atproto/identity';
import { type Event, Firehose as ConsumerFirehose } from '@atproto/sync';
import { startTestPds, type TestPds } from './harness.ts';
import { PNG, postPicture } from './picture-post.ts';
import { xrpcError } from './xrpc-assert.ts';

const PASSWORD = 'alice password';

async function waitFor(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !pred(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(pred(), `timed out waiting for ${what}`);
}

describe('takedowns through the admin API', () => {
  let pds: TestPds;
  let alice: AtpAgent;
  let anon: AtpAgent;
  let did: string;
  let blobCid: string;
  let recordUri: string;
  let recordCid: string;
  let rkey: string;
  let consumer: ConsumerFirehose;
  const events: Event[] = [];

  const adminHeaders = () => ({
    authorization: `Basic ${Buffer.from(`admin:${pds.ctx.config.adminPassword}`).toString('base64')}`,
  });
  const admin = () => ({ headers: adminHeaders(), encoding: 'application/json' as const });

  before(async () => {
    pds = await startTestPds();
    alice = new AtpAgent({ service: pds.url });
    anon = new AtpAgent({ service: pds.url });
    await alice.createAccount({ handle: 'alice.test', email: 'alice@example.com', password: PASSWORD });
    did = alice.session!.did;
    const picture = await postPicture(alice);
    blobCid = picture.blobCid;
    recordUri = picture.uri;
    recordCid = picture.cid;
    rkey = picture.uri.split('/').pop()!;
    consumer = new ConsumerFirehose({
      service: pds.url.replace('http://', 'ws://'),
      idResolver: new IdResolver({ plcUrl: pds.plcUrl, fetch: globalThis.fetch }),
      unauthenticatedHandles: true,
      getCursor: () => (events.length ? events.at(-1)!.seq : 0),
      handleEvent: (evt) => {
        events.push(evt);
      },
      onError: () => {},
    });
    void consumer.start();
  });
  after(async () => {
    await consumer?.destroy();
    await pds?.close();
  });

  const readsWork = async () => {
    await anon.com.atproto.sync.getRepo({ did });
    await anon.com.atproto.sync.getLatestCommit({ did });
    await anon.com.atproto.sync.getRecord({ did, collection: 'app.bsky.feed.post', rkey });
    await anon.com.atproto.sync.listBlobs({ did });
    const blob = await anon.com.atproto.sync.getBlob({ did, cid: blobCid });
    assert.deepEqual(Buffer.from(blob.data), PNG);
    const record = await anon.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.post', rkey });
    assert.equal(record.data.cid, recordCid);
  };
  const accountEvents = () =>
    events.filter((e): e is Event & { event: 'account' } => e.event === 'account' && e.did === did);

  test('an account taken down and restored', async () => {
    await readsWork();
    const { data } = await alice.com.atproto.admin.updateSubjectStatus(
      { subject: { $type: 'com.atproto.admin.defs#repoRef', did }, takedown: { applied: true, ref: 'case-1' } },
      admin(),
    );
    assert.deepEqual(data.takedown, { applied: true, ref: 'case-1' });

    const signIn = await xrpcError(
      new AtpAgent({ service: pds.url }).login({ identifier: 'alice.test', password: PASSWORD }),
    );
    assert.deepEqual([signIn.status, signIn.error], [401, 'AccountTakedown']);
    // A session from before the takedown writes nothing.
    const write = await xrpcError(
      alice.com.atproto.repo.createRecord({
        repo: did,
        collection: 'app.bsky.feed.post',
        record: { $type: 'app.bsky.feed.post', text: 'still here?', createdAt: new Date().toISOString() },
      }),
    );
    assert.deepEqual([write.status, write.error], [401, 'AccountTakedown']);
    for (const call of [
      () => anon.com.atproto.sync.getRepo({ did }),
      () => anon.com.atproto.sync.getLatestCommit({ did }),
      () => anon.com.atproto.sync.getRecord({ did, collection: 'app.bsky.feed.post', rkey }),
      () => anon.com.atproto.sync.getBlob({ did, cid: blobCid }),
      () => anon.com.atproto.sync.listBlobs({ did }),
    ]) {
      const err = await xrpcError(call());
      assert.deepEqual([err.status, err.error, err.message], [400, 'RepoTakendown', `Repo has been takendown: ${did}`]);
    }
    const getRecord = await xrpcError(
      anon.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.post', rkey }),
    );
    assert.equal(getRecord.status, 400);
    const { data: repos } = await anon.com.atproto.sync.listRepos({});
    assert.deepEqual(
      repos.repos.map((r) => [r.did, r.active, r.status]),
      [[did, false, 'takendown']],
    );
    const { data: status } = await alice.com.atproto.admin.getSubjectStatus({ did }, { headers: adminHeaders() });
    assert.deepEqual(status.takedown, { applied: true, ref: 'case-1' });
    // The admin still reads the repository, as the reference allows.
    await anon.com.atproto.sync.getRepo({ did }, { headers: adminHeaders() });
    await waitFor(() => accountEvents().some((e) => e.status === 'takendown'), '#account takendown');
    const down = accountEvents().at(-1)!;
    assert.deepEqual([down.active, down.status], [false, 'takendown']);

    await alice.com.atproto.admin.updateSubjectStatus(
      { subject: { $type: 'com.atproto.admin.defs#repoRef', did }, takedown: { applied: false } },
      admin(),
    );
    await waitFor(() => accountEvents().at(-1)?.active === true, '#account active');
    await alice.login({ identifier: 'alice.test', password: PASSWORD });
    await readsWork();
    const { data: restored } = await alice.com.atproto.admin.getSubjectStatus({ did }, { headers: adminHeaders() });
    assert.deepEqual(restored.takedown, { applied: false });
    const { data: reposAfter } = await anon.com.atproto.sync.listRepos({});
    assert.deepEqual(reposAfter.repos[0]!.active, true);
  });

  test('a record taken down and restored', async () => {
    const subject = { $type: 'com.atproto.repo.strongRef', uri: recordUri, cid: recordCid };
    await alice.com.atproto.admin.updateSubjectStatus({ subject, takedown: { applied: true, ref: 'case-2' } }, admin());
    const err = await xrpcError(anon.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.post', rkey }));
    assert.deepEqual(
      [err.status, err.error, err.message],
      [400, 'RecordNotFound', `Could not locate record: ${recordUri}`],
    );
    const { data: list } = await anon.com.atproto.repo.listRecords({ repo: did, collection: 'app.bsky.feed.post' });
    assert.deepEqual(list.records, []);
    const { data: status } = await alice.com.atproto.admin.getSubjectStatus(
      { uri: recordUri },
      { headers: adminHeaders() },
    );
    assert.deepEqual(status.takedown, { applied: true, ref: 'case-2' });
    assert.equal((status.subject as { cid: string }).cid, recordCid);
    // The rest of the repository is untouched.
    const { data: car } = await anon.com.atproto.sync.getRepo({ did });
    // Importing the repository again (as a move back in would) does not lift the takedown.
    await alice.com.atproto.server.deactivateAccount({});
    await alice.com.atproto.repo.importRepo(car, { encoding: 'application/vnd.ipld.car' });
    await alice.com.atproto.server.activateAccount();
    const still = await xrpcError(
      anon.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.post', rkey }),
    );
    assert.deepEqual([still.status, still.error], [400, 'RecordNotFound']);

    await alice.com.atproto.admin.updateSubjectStatus({ subject, takedown: { applied: false } }, admin());
    await readsWork();
    const { data: after } = await alice.com.atproto.admin.getSubjectStatus(
      { uri: recordUri },
      { headers: adminHeaders() },
    );
    assert.deepEqual(after.takedown, { applied: false });
  });

  test('a blob taken down and restored', async () => {
    const subject = { $type: 'com.atproto.admin.defs#repoBlobRef', did, cid: blobCid };
    await alice.com.atproto.admin.updateSubjectStatus({ subject, takedown: { applied: true, ref: 'case-3' } }, admin());
    const err = await xrpcError(anon.com.atproto.sync.getBlob({ did, cid: blobCid }));
    assert.deepEqual([err.status, err.error], [400, 'BlobNotFound']);
    const { data: status } = await alice.com.atproto.admin.getSubjectStatus(
      { did, blob: blobCid },
      { headers: adminHeaders() },
    );
    assert.deepEqual(status.takedown, { applied: true, ref: 'case-3' });
    // The record that embeds it still reads.
    await anon.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.post', rkey });

    await alice.com.atproto.admin.updateSubjectStatus({ subject, takedown: { applied: false } }, admin());
    await readsWork();
  });

  test('refused without the admin password', async () => {
    const subject = { $type: 'com.atproto.admin.defs#repoRef', did };
    const none = await xrpcError(anon.com.atproto.admin.updateSubjectStatus({ subject, takedown: { applied: true } }));
    assert.equal(none.status, 401);
    const asUser = await xrpcError(
      alice.com.atproto.admin.updateSubjectStatus({ subject, takedown: { applied: true } }),
    );
    assert.equal(asUser.status, 401);
    const wrong = await xrpcError(
      anon.com.atproto.admin.getSubjectStatus(
        { did },
        { headers: { authorization: `Basic ${Buffer.from('admin:wrong').toString('base64')}` } },
      ),
    );
    assert.equal(wrong.status, 401);
    assert.equal(pds.ctx.accountManager.getAccount(did)!.takedownRef, null);
  });
});
