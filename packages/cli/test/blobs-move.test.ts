/**
 * `portage blobs move` on a running server: blobs go from disk to S3 (moto's S3 server) and
 * back while the account keeps uploading, posting and deleting, and afterwards every blob a
 * record references is served, with the bytes of its CID, from the store it moved to.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { CODEC_RAW, cidFromDigest, formatCid, parseCid } from '@portage/atproto/cid';
import type { BlobStore } from '@portage/pds/blobstore/blobstore';
import { DiskBlobStore } from '@portage/pds/blobstore/disk';
import { S3BlobStore } from '@portage/pds/blobstore/s3';
import { s3ServerMissing, startS3Server, type TestS3Server } from '../../../test/support/s3-server.ts';
import { startTestPds, type TestPds } from '../../pds/test/harness.ts';

const main = join(import.meta.dirname, '..', 'bin', 'portage.js');

function runMove(to: string, dataDir: string, env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, 'blobs', 'move', '--to', to, '--data', dataDir], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? -1, output }));
  });
}

describe('portage blobs move', { skip: s3ServerMissing() }, () => {
  let dir: string;
  let s3: TestS3Server;
  let pds: TestPds | undefined;
  let agent: AtpAgent;
  let password: string;
  /** Records that stand, by URI: the CID of the blob each references. */
  const standing = new Map<string, string>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portage-blobs-move-'));
    s3 = await startS3Server();
    await s3.createBucket('moved');
  });
  after(async () => {
    await pds?.close();
    await s3?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function serve(env: Record<string, string>): Promise<void> {
    await pds?.close();
    pds = await startTestPds({ dataDir: join(dir, 'data'), env });
    agent = new AtpAgent({ service: pds.url });
    if (password) await agent.login({ identifier: 'mover.test', password });
  }

  async function postBlob(): Promise<void> {
    const bytes = randomBytes(2000 + Math.floor(Math.random() * 30_000));
    const { data } = await agent.com.atproto.repo.uploadBlob(bytes, { encoding: 'application/octet-stream' });
    const { data: created } = await agent.com.atproto.repo.createRecord({
      repo: agent.session!.did,
      collection: 'com.example.file',
      record: { $type: 'com.example.file', file: data.blob },
    });
    standing.set(created.uri, data.blob.ref.toString());
  }

  async function deleteOne(): Promise<void> {
    const [uri] = standing.keys();
    if (!uri) return;
    standing.delete(uri);
    await agent.com.atproto.repo.deleteRecord({
      repo: agent.session!.did,
      collection: 'com.example.file',
      rkey: uri.split('/').pop()!,
    });
  }

  /** Writes while `moving` runs: uploads and posts, and now and then a delete. */
  async function writeWhile<T>(moving: Promise<T>): Promise<T> {
    let done = false;
    const result = moving.finally(() => (done = true));
    let writes = 0;
    while (!done || writes < 5) {
      await postBlob();
      if (++writes % 4 === 0) await deleteOne();
    }
    return result;
  }

  /** Every standing record's blob is served with the bytes of its CID, and is in `store`. */
  async function assertAllPresent(store: BlobStore): Promise<void> {
    const did = agent.session!.did;
    for (const cid of standing.values()) {
      const res = await fetch(`${pds!.url}/xrpc/com.atproto.sync.getBlob?did=${did}&cid=${cid}`);
      assert.equal(res.status, 200, cid);
      const digest = createHash('sha256')
        .update(Buffer.from(await res.arrayBuffer()))
        .digest();
      assert.equal(formatCid(cidFromDigest(CODEC_RAW, digest)), cid);
      assert.equal(await store.hasPermanent(did, parseCid(cid)), true, `${cid} is in the target store`);
    }
  }

  async function permanentIn(store: BlobStore): Promise<number> {
    let n = 0;
    for await (const _ of store.listPermanent()) n++;
    return n;
  }

  it('moves every blob to S3 and back while the account writes', async () => {
    await serve({});
    password = 'mover-password';
    await agent.createAccount({ handle: 'mover.test', email: 'mover@example.com', password });
    for (let i = 0; i < 30; i++) await postBlob();

    const s3Env = s3.env('moved');
    const disk = new DiskBlobStore(pds!.ctx.config.blobstoreDiskLocation, pds!.ctx.config.blobstoreDiskTmpLocation);
    const bucket = new S3BlobStore({
      bucket: 'moved',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      accessKeyId: 'test',
      secretAccessKey: 'test',
    });
    try {
      // To S3: the server writes to the bucket and reads both while the command moves the rest.
      await serve({ ...s3Env, PORTAGE_BLOBSTORE_PREVIOUS: 'disk' });
      const there = await writeWhile(runMove('s3', join(dir, 'data'), s3Env));
      assert.equal(there.code, 0, there.output);
      assert.match(there.output, /Every blob is in the bucket moved/);
      await serve(s3Env);
      await assertAllPresent(bucket);
      assert.equal(await permanentIn(disk), 0);

      // And back to disk.
      await serve({ ...s3Env, PORTAGE_BLOBSTORE_PREVIOUS: 's3' });
      const back = await writeWhile(runMove('disk', join(dir, 'data'), s3Env));
      assert.equal(back.code, 0, back.output);
      await serve({});
      await assertAllPresent(disk);
      assert.equal(await permanentIn(bucket), 0);
    } finally {
      await bucket.close();
    }
  });

  it('says what to do when no bucket is configured', async () => {
    const res = await runMove('s3', join(dir, 'data'), {});
    assert.equal(res.code, 2);
    assert.match(res.output, /no bucket is configured\. Set PDS_BLOBSTORE_S3_BUCKET/);
  });
});
