/**
 * The repo and sync endpoints driven by the official client (@atproto/api) against our PDS,
 * with the reference's @atproto/repo as the judge of every export and proof; once with blobs on
 * disk and once in S3 (moto's S3 server).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent, RichText } from '@atproto/api';
import { verifyProofs, verifyRepoCar } from '@atproto/repo';
import { CID } from 'multiformats/cid';
import { s3ServerMissing, startS3Server, type TestS3Server } from '../../../test/support/s3-server.ts';
import { S3BlobStore } from '../src/blobstore/s3.ts';
import { startTestPds, type TestPds } from './harness.ts';
import { xrpcError } from './xrpc-assert.ts';

const BLOB_LIMIT = 64 * 1024;

// A 1x1 PNG: real image bytes, so type sniffing has something to recognise.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

let s3Server: TestS3Server | undefined;
after(async () => {
  await s3Server?.stop();
});

/** Where the test server keeps blobs: PDS_* settings for the store. */
async function blobstoreEnv(store: 'disk' | 's3'): Promise<Record<string, string>> {
  if (store === 'disk') return {};
  s3Server ??= await startS3Server();
  await s3Server.createBucket('repo-api');
  return s3Server.env('repo-api');
}

/** Temporary uploads left in the server's blob store. */
async function temporaryBlobs(pds: TestPds): Promise<string[]> {
  const store = pds.ctx.blobstore;
  if (store instanceof S3BlobStore) {
    const keys: string[] = [];
    for await (const object of store.list('tmp/')) keys.push(object.key);
    return keys;
  }
  const temp = pds.ctx.config.blobstoreDiskTmpLocation;
  return readdirSync(temp, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((f) => join(f.parentPath, f.name));
}

for (const store of ['disk', 's3'] as const)
  describe(
    `repo and sync endpoints through @atproto/api (blobs on ${store})`,
    { skip: store === 's3' && s3ServerMissing() },
    () => {
      let pds: TestPds;
      let agent: AtpAgent;
      let did: string;
      let signingKey: string;

      before(async () => {
        pds = await startTestPds({
          env: { PDS_BLOB_UPLOAD_LIMIT: String(BLOB_LIMIT), ...(await blobstoreEnv(store)) },
        });
        agent = new AtpAgent({ service: pds.url });
        await agent.createAccount({
          handle: 'alice.test',
          email: 'alice@example.com',
          password: 'correct horse battery',
        });
        did = agent.session!.did;
        const doc = (await (await fetch(`${pds.plcUrl}/${did}`)).json()) as {
          verificationMethod: { id: string; publicKeyMultibase: string }[];
        };
        const method = doc.verificationMethod.find((m) => m.id.endsWith('#atproto'));
        assert.ok(method);
        signingKey = `did:key:${method.publicKeyMultibase}`;
      });
      after(async () => {
        await pds?.close();
      });

      async function getRepoCar(since?: string): Promise<Uint8Array> {
        const res = await agent.com.atproto.sync.getRepo({ did, since });
        assert.equal(res.headers['content-type'], 'application/vnd.ipld.car');
        return res.data;
      }

      async function allListedRecords(): Promise<Map<string, string>> {
        const out = new Map<string, string>();
        const { data: described } = await agent.com.atproto.repo.describeRepo({ repo: did });
        for (const collection of described.collections) {
          let cursor: string | undefined;
          do {
            const { data } = await agent.com.atproto.repo.listRecords({ repo: did, collection, limit: 100, cursor });
            for (const r of data.records) out.set(r.uri.slice(`at://${did}/`.length), r.cid);
            cursor = data.cursor;
          } while (cursor);
        }
        return out;
      }

      /** getRepo verifies with the reference and holds exactly the records listRecords returns. */
      async function assertExportMatchesIndex(): Promise<number> {
        const verified = await verifyRepoCar(await getRepoCar(), did, signingKey);
        const inCar = new Map(verified.creates.map((w) => [`${w.collection}/${w.rkey}`, w.cid.toString()]));
        assert.deepEqual(inCar, await allListedRecords());
        return inCar.size;
      }

      it('posts, replies, likes, follows, and the export verifies', async () => {
        const rt = new RichText({ text: 'hello from portage' });
        const root = await agent.post({ text: rt.text, facets: rt.facets, createdAt: new Date().toISOString() });
        const reply = await agent.post({
          text: 'a reply',
          reply: { root: { uri: root.uri, cid: root.cid }, parent: { uri: root.uri, cid: root.cid } },
          createdAt: new Date().toISOString(),
        });
        await agent.like(reply.uri, reply.cid);
        await agent.follow('did:plc:ewvi7nxzyoun6zhxrhs64oiz');
        const { data } = await agent.com.atproto.repo.getRecord({
          repo: did,
          collection: 'app.bsky.feed.post',
          rkey: root.uri.split('/').pop()!,
        });
        assert.equal((data.value as { text: string }).text, 'hello from portage');
        assert.equal(await assertExportMatchesIndex(), 4);
      });

      it('uploads an image, posts it, sets a profile avatar; getBlob serves it safely', async () => {
        const { data: upload } = await agent.uploadBlob(PNG, { encoding: 'application/octet-stream' });
        assert.equal(upload.blob.mimeType, 'image/png', 'the type comes from the bytes');
        assert.equal(upload.blob.size, PNG.length);
        await agent.post({
          text: 'a picture',
          embed: { $type: 'app.bsky.embed.images', images: [{ alt: 'one pixel', image: upload.blob }] },
          createdAt: new Date().toISOString(),
        });
        await agent.upsertProfile((existing) => ({ ...existing, displayName: 'Alice', avatar: upload.blob }));
        const profile = await agent.com.atproto.repo.getRecord({
          repo: did,
          collection: 'app.bsky.actor.profile',
          rkey: 'self',
        });
        assert.equal((profile.data.value as { displayName: string }).displayName, 'Alice');

        const cid = upload.blob.ref.toString();
        const res = await fetch(`${pds.url}/xrpc/com.atproto.sync.getBlob?did=${did}&cid=${cid}`);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), 'image/png');
        assert.equal(res.headers.get('content-length'), String(PNG.length));
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
        assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'; sandbox/);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), PNG);

        const { data: blobs } = await agent.com.atproto.sync.listBlobs({ did });
        assert.deepEqual(blobs.cids, [cid]);
        await assertExportMatchesIndex();
      });

      it('edits and deletes records, with putRecord and deleteRecord', async () => {
        const created = await agent.post({ text: 'first draft', createdAt: new Date().toISOString() });
        const rkey = created.uri.split('/').pop()!;
        const put = await agent.com.atproto.repo.putRecord({
          repo: did,
          collection: 'app.bsky.feed.post',
          rkey,
          record: { $type: 'app.bsky.feed.post', text: 'second draft', createdAt: new Date().toISOString() },
          swapRecord: created.cid,
        });
        assert.equal(put.data.validationStatus, 'valid');
        const { data } = await agent.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.post', rkey });
        assert.equal((data.value as { text: string }).text, 'second draft');
        assert.equal(data.cid, put.data.cid);
        await agent.deletePost(created.uri);
        const gone = await xrpcError(
          agent.com.atproto.repo.getRecord({ repo: did, collection: 'app.bsky.feed.post', rkey }),
        );
        assert.equal(gone.error, 'RecordNotFound');
        await assertExportMatchesIndex();
      });

      it('pages through listRecords in both directions', async () => {
        const writes = Array.from({ length: 120 }, (_, i) => ({
          $type: 'com.atproto.repo.applyWrites#create' as const,
          collection: 'app.bsky.feed.like',
          value: {
            $type: 'app.bsky.feed.like',
            subject: {
              uri: `at://${did}/app.bsky.feed.post/3k${String(i).padStart(11, 'a')}`,
              cid: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm',
            },
            createdAt: new Date().toISOString(),
          },
        }));
        const { data } = await agent.com.atproto.repo.applyWrites({ repo: did, writes });
        assert.equal(data.results?.length, 120);
        const pages = async (reverse: boolean) => {
          const uris: string[] = [];
          let cursor: string | undefined;
          do {
            const page = await agent.com.atproto.repo.listRecords({
              repo: did,
              collection: 'app.bsky.feed.like',
              limit: 50,
              cursor,
              reverse,
            });
            uris.push(...page.data.records.map((r) => r.uri));
            cursor = page.data.cursor;
          } while (cursor);
          return uris;
        };
        const forward = await pages(false);
        assert.equal(forward.length, 121);
        assert.equal(new Set(forward).size, 121);
        assert.deepEqual(await pages(true), [...forward].reverse());
      });

      it('rejects applyWrites with a stale swapCommit and changes nothing', async () => {
        const { data: before } = await agent.com.atproto.sync.getLatestCommit({ did });
        await agent.post({ text: 'moves the head', createdAt: new Date().toISOString() });
        const { data: head } = await agent.com.atproto.sync.getLatestCommit({ did });
        const err = await xrpcError(
          agent.com.atproto.repo.applyWrites({
            repo: did,
            swapCommit: before.cid,
            writes: [
              {
                $type: 'com.atproto.repo.applyWrites#create',
                collection: 'app.bsky.feed.post',
                value: { $type: 'app.bsky.feed.post', text: 'x', createdAt: new Date().toISOString() },
              },
            ],
          }),
        );
        assert.equal(err.status, 400);
        assert.equal(err.error, 'InvalidSwap');
        assert.deepEqual((await agent.com.atproto.sync.getLatestCommit({ did })).data, head);
      });

      it('serves record proofs the reference verifies, for present and absent records', async () => {
        const { data } = await agent.com.atproto.repo.listRecords({
          repo: did,
          collection: 'app.bsky.feed.post',
          limit: 3,
        });
        for (const record of data.records) {
          const rkey = record.uri.split('/').pop()!;
          const proof = await agent.com.atproto.sync.getRecord({ did, collection: 'app.bsky.feed.post', rkey });
          const result = await verifyProofs(
            proof.data,
            [{ collection: 'app.bsky.feed.post', rkey, cid: CID.parse(record.cid) as never }],
            did,
            signingKey,
          );
          assert.equal(result.verified.length, 1);
        }
        const absent = await agent.com.atproto.sync.getRecord({
          did,
          collection: 'app.bsky.feed.post',
          rkey: '3zzzzzzzzzzzz',
        });
        const result = await verifyProofs(
          absent.data,
          [{ collection: 'app.bsky.feed.post', rkey: '3zzzzzzzzzzzz', cid: null }],
          did,
          signingKey,
        );
        assert.equal(result.verified.length, 1);
      });

      it('answers getLatestCommit, getRepoStatus, listRepos, getBlocks and since exports consistently', async () => {
        const { data: head } = await agent.com.atproto.sync.getLatestCommit({ did });
        const { data: status } = await agent.com.atproto.sync.getRepoStatus({ did });
        assert.deepEqual(status, { did, active: true, rev: head.rev });
        const { data: repos } = await agent.com.atproto.sync.listRepos({});
        assert.deepEqual(repos.repos, [{ did, head: head.cid, rev: head.rev, active: true }]);
        const blocks = await agent.com.atproto.sync.getBlocks({ did, cids: [head.cid] });
        assert.ok(blocks.data.length > 100);
        await agent.post({ text: 'after the rev', createdAt: new Date().toISOString() });
        const diff = await getRepoCar(head.rev);
        const full = await getRepoCar();
        assert.ok(diff.length < full.length / 3, 'a since export carries only the new blocks');
        const missing = await xrpcError(agent.com.atproto.sync.getRepo({ did: 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa' }));
        assert.equal(missing.error, 'RepoNotFound');
      });

      describe('bad input is refused with the right error and changes nothing', () => {
        let headBefore: string;
        before(async () => {
          headBefore = (await agent.com.atproto.sync.getLatestCommit({ did })).data.cid;
        });
        after(async () => {
          assert.equal((await agent.com.atproto.sync.getLatestCommit({ did })).data.cid, headBefore);
        });

        const post = (extra: object = {}) => ({
          $type: 'app.bsky.feed.post',
          text: 'x',
          createdAt: new Date().toISOString(),
          ...extra,
        });

        it('an invalid record for its lexicon', async () => {
          const err = await xrpcError(
            agent.com.atproto.repo.createRecord({
              repo: did,
              collection: 'app.bsky.feed.post',
              record: { $type: 'app.bsky.feed.post', text: 42 },
            }),
          );
          assert.equal(err.status, 400);
          assert.equal(err.error, 'InvalidRequest');
          assert.match(err.message, /app\.bsky\.feed\.post/);
        });

        it('a bad rkey', async () => {
          const err = await xrpcError(
            agent.com.atproto.repo.createRecord({
              repo: did,
              collection: 'app.bsky.feed.post',
              rkey: 'no/slashes',
              record: post(),
            }),
          );
          assert.equal(err.status, 400);
          assert.match(err.message, /record key/);
        });

        it('a record over 1 MB', async () => {
          const record = { $type: 'com.example.big', payload: 'x'.repeat(1024 * 1024 + 10) };
          const err = await xrpcError(
            agent.com.atproto.repo.createRecord({ repo: did, collection: 'com.example.big', record }),
          );
          assert.ok(err.status === 400 || err.status === 413, `status ${err.status}`);
        });

        it('more than 200 writes', async () => {
          const writes = Array.from({ length: 201 }, () => ({
            $type: 'com.atproto.repo.applyWrites#create' as const,
            collection: 'app.bsky.feed.post',
            value: post(),
          }));
          const err = await xrpcError(agent.com.atproto.repo.applyWrites({ repo: did, writes }));
          assert.equal(err.status, 400);
          assert.equal(err.error, 'InvalidRequest');
        });

        it('a write to somebody else’s repository', async () => {
          const err = await xrpcError(
            agent.com.atproto.repo.createRecord({
              repo: 'did:plc:ewvi7nxzyoun6zhxrhs64oiz',
              collection: 'app.bsky.feed.post',
              record: post(),
            }),
          );
          assert.equal(err.status, 400);
        });

        it('validate: true on an unknown lexicon, while unset accepts it as unknown', async () => {
          const err = await xrpcError(
            agent.com.atproto.repo.createRecord({
              repo: did,
              collection: 'com.example.thing',
              validate: true,
              record: { $type: 'com.example.thing' },
            }),
          );
          assert.equal(err.error, 'InvalidRequest');
          assert.match(err.message, /Lexicon not found/);
        });

        it('a blob over the upload limit, stopped while streaming with nothing stored', async () => {
          const tooBig = new Uint8Array(BLOB_LIMIT + 1);
          const err = await xrpcError(agent.uploadBlob(tooBig, { encoding: 'image/png' }));
          assert.equal(err.status, 413);
          assert.equal(err.error, 'PayloadTooLarge');
          // A chunked upload without Content-Length is cut off by counting, too.
          async function* chunks() {
            for (let i = 0; i < 8; i++) yield new Uint8Array(BLOB_LIMIT / 4);
          }
          const res = await fetch(`${pds.url}/xrpc/com.atproto.repo.uploadBlob`, {
            method: 'POST',
            headers: { authorization: `Bearer ${agent.session!.accessJwt}`, 'content-type': 'image/png' },
            body: ReadableStreamFrom(chunks()),
            duplex: 'half',
          } as RequestInit);
          assert.equal(res.status, 413);
          assert.deepEqual(await temporaryBlobs(pds), []);
        });
      });

      it('creates an unknown-lexicon record with validationStatus unknown', async () => {
        const { data } = await agent.com.atproto.repo.createRecord({
          repo: did,
          collection: 'com.example.thing',
          record: { $type: 'com.example.thing', n: 1 },
        });
        assert.equal(data.validationStatus, 'unknown');
        await assertExportMatchesIndex();
      });
    },
  );

function ReadableStreamFrom(source: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  return new ReadableStream({
    async pull(controller) {
      const { value, done } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
  });
}
