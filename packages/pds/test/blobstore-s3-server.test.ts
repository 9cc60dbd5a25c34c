/**
 * A server storing blobs in S3 (moto's S3 server): the health check and the blob-bytes metric
 * see the bucket; getBlob can redirect to a CDN in front of it; an outage mid-upload answers a
 * clear error and leaves no blob a record could point at; and a 300 MB upload and its download
 * keep a `portage serve` process's memory flat.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AtpAgent } from '@atproto/api';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CODEC_RAW, cidForRaw, cidFromDigest, formatCid } from '@portage/atproto/cid';
import { s3ServerMissing, startS3Server, type TestS3Server } from '../../../test/support/s3-server.ts';
import { type ServeProcess, startServeProcess } from '../../../test/support/serve-process.ts';
import { type RunningPlcDirectory, startPlcDirectory } from '../src/plc/server.ts';
import { startTestPds, type TestPds } from './harness.ts';
import { PNG, postPicture } from './picture-post.ts';
import { S3BlobStore } from '../src/blobstore/s3.ts';

const MB = 1024 * 1024;

/** `count` chunks of `size` bytes, each different, the same on every call. */
function* pattern(count: number, size: number): Generator<Buffer> {
  for (let i = 0; i < count; i++) {
    const chunk = Buffer.alloc(size, i % 251);
    chunk.writeUInt32BE(i, 0);
    yield chunk;
  }
}

/**
 * POSTs a streamed body with node:http (which, unlike fetch, still reads an answer the server
 * sends before the body is all written). `onChunk` runs before each chunk is written.
 */
function upload(
  url: string,
  token: string,
  chunks: Iterable<Buffer>,
  onChunk: (index: number) => Promise<void> = async () => {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/xrpc/com.atproto.repo.uploadBlob`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        // An early answer: stop sending the rest of the body.
        req.destroy();
        resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : {} });
      });
    });
    req.on('error', reject);
    (async () => {
      let i = 0;
      for (const chunk of chunks) {
        await onChunk(i++);
        if (req.destroyed) return;
        if (!req.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              req.off('drain', done);
              req.off('close', done);
              resolve();
            };
            req.on('drain', done);
            req.on('close', done);
          });
        }
      }
      req.end();
    })().catch(() => {});
  });
}

describe('a server storing blobs in S3', { skip: s3ServerMissing() }, () => {
  let s3: TestS3Server;
  let pds: TestPds;
  let agent: AtpAgent;
  before(async () => {
    s3 = await startS3Server();
    await s3.createBucket('pds');
    pds = await startTestPds({ env: s3.env('pds') });
    agent = new AtpAgent({ service: pds.url });
    await agent.createAccount({ handle: 'bucket.test', email: 'bucket@example.com', password: 'bucket-password' });
  });
  after(async () => {
    await pds?.close();
    await s3?.stop();
  });

  it('reports the bucket in the health check and its blob bytes in the metrics', async () => {
    assert.equal((await fetch(`${pds.url}/xrpc/_health`)).status, 200);
    await postPicture(agent);
    const metrics = await (await fetch(`${pds.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`^portage_blob_bytes ${PNG.length}$`, 'm'));
  });

  it('redirects getBlob to the CDN in front of the bucket, for blobs it would serve', async () => {
    const behindCdn = await startTestPds({
      env: { ...s3.env('pds'), PORTAGE_BLOBSTORE_CDN_URL: `${s3.endpoint}/pds/` },
      plcUrl: pds.plcUrl,
    });
    try {
      const cdnAgent = new AtpAgent({ service: behindCdn.url });
      await cdnAgent.createAccount({ handle: 'behind-cdn.test', email: 'cdn@example.com', password: 'cdn-password' });
      const did = cdnAgent.session!.did;
      const { blobCid } = await postPicture(cdnAgent);
      const res = await fetch(`${behindCdn.url}/xrpc/com.atproto.sync.getBlob?did=${did}&cid=${blobCid}`, {
        redirect: 'manual',
      });
      assert.equal(res.status, 302);
      const location = res.headers.get('location')!;
      assert.equal(location, `${s3.endpoint}/pds/blocks/${did}/${blobCid}`);
      // A CDN fetches that path's key from the bucket (signing as its origin): the very bytes.
      const key = decodeURIComponent(location.slice(`${s3.endpoint}/pds/`.length));
      const client = new S3Client({
        region: 'us-east-1',
        endpoint: s3.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
      const object = await client.send(new GetObjectCommand({ Bucket: 'pds', Key: key }));
      assert.deepEqual(Buffer.from(await object.Body!.transformToByteArray()), PNG);
      client.destroy();
      // A blob the server would not serve is not redirected either.
      const unknown = formatCid(cidForRaw(new Uint8Array([1, 2, 3])));
      const missing = await fetch(`${behindCdn.url}/xrpc/com.atproto.sync.getBlob?did=${did}&cid=${unknown}`, {
        redirect: 'manual',
      });
      assert.equal(missing.status, 400);
      assert.equal(((await missing.json()) as { error: string }).error, 'BlobNotFound');
    } finally {
      await behindCdn.close();
    }
  });

  it('copies each server backup to the bucket, the manifest last', async () => {
    const backupDir = mkdtempSync(join(tmpdir(), 'portage-s3-backups-'));
    const backedUp = await startTestPds({
      env: {
        ...s3.env('pds'),
        PORTAGE_BACKUP_DIRECTORY: backupDir,
        PORTAGE_BACKUP_INTERVAL: '1d',
        PORTAGE_BACKUP_TO_BUCKET: 'true',
      },
      plcUrl: pds.plcUrl,
    });
    try {
      const taken = (await backedUp.backups!.runNow())!;
      const name = taken.folder.split(/[\\/]/).pop()!;
      const store = backedUp.ctx.blobstore as S3BlobStore;
      const keys: string[] = [];
      for await (const object of store.list(`backups/${name}/`)) keys.push(object.key.slice(`backups/${name}/`.length));
      assert.ok(keys.includes('manifest.json'), keys.join(', '));
      assert.ok(keys.includes('account.sqlite'), keys.join(', '));
      const client = new S3Client({
        region: 'us-east-1',
        endpoint: s3.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
      const object = await client.send(new GetObjectCommand({ Bucket: 'pds', Key: `backups/${name}/manifest.json` }));
      assert.deepEqual(
        JSON.parse(await object.Body!.transformToString()),
        JSON.parse(readFileSync(join(taken.folder, 'manifest.json'), 'utf8')),
      );
      client.destroy();
    } finally {
      await backedUp.close();
      rmSync(backupDir, { recursive: true, force: true });
    }
  });

  it('answers an outage mid-upload with a clear error and keeps no blob a record could use', async () => {
    const did = agent.session!.did;
    const chunks = 24;
    const whole = Buffer.concat([...pattern(chunks, MB)]);
    const answer = await upload(pds.url, agent.session!.accessJwt, pattern(chunks, MB), async (i) => {
      if (i === 12) await s3.kill();
    });
    assert.equal(answer.status, 503);
    assert.equal(answer.body.error, 'BlobStoreUnavailable');
    assert.match(String(answer.body.message), /try again later/);
    const health = await fetch(`${pds.url}/xrpc/_health`);
    assert.equal(health.status, 503);

    await s3.restart();
    await s3.createBucket('pds');
    assert.equal((await fetch(`${pds.url}/xrpc/_health`)).status, 200);
    // The half-sent blob is not the account's: a record naming it is refused.
    const cid = formatCid(cidFromDigest(CODEC_RAW, createHash('sha256').update(whole).digest()));
    const { data: listed } = await agent.com.atproto.sync.listBlobs({ did });
    assert.equal(listed.cids.includes(cid), false);
    const refused = await fetch(`${pds.url}/xrpc/com.atproto.repo.createRecord`, {
      method: 'POST',
      headers: { authorization: `Bearer ${agent.session!.accessJwt}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        repo: did,
        collection: 'com.example.file',
        record: {
          $type: 'com.example.file',
          file: { $type: 'blob', ref: { $link: cid }, mimeType: 'application/octet-stream', size: whole.length },
        },
      }),
    });
    assert.equal(refused.status, 400);
    // With the bucket back, the same upload goes through and is served whole.
    const again = await upload(pds.url, agent.session!.accessJwt, pattern(chunks, MB));
    assert.equal(again.status, 200);
    assert.equal((again.body.blob as { ref: { $link: string } }).ref.$link, cid);
  });
});

describe('memory of a server during a 300 MB upload to S3', { skip: s3ServerMissing() }, () => {
  let dir: string;
  let s3: TestS3Server;
  let plc: RunningPlcDirectory;
  let server: ServeProcess;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portage-s3-rss-'));
    s3 = await startS3Server();
    await s3.createBucket('big');
    plc = await startPlcDirectory({ port: 0, host: '127.0.0.1', dataDirectory: join(dir, 'plc') });
    server = await startServeProcess({
      ...s3.env('big'),
      PDS_DATA_DIRECTORY: join(dir, 'data'),
      PDS_DID_PLC_URL: plc.url,
      PDS_BLOB_UPLOAD_LIMIT: String(400 * MB),
    });
  });
  after(async () => {
    await server?.stop();
    await plc?.close();
    await s3?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the resident set flat while the blob streams in and out', async () => {
    const agent = new AtpAgent({ service: server.url });
    await agent.createAccount({ handle: 'big.test', email: 'big@example.com', password: 'big-password' });
    const token = agent.session!.accessJwt;
    // A first, small upload loads what uploads need; memory is measured from there.
    assert.equal((await upload(server.url, token, pattern(2, MB))).status, 200);
    const baseline = server.rssBytes();
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, server.rssBytes())), 50);
    try {
      const size = 300 * MB;
      const hash = createHash('sha256');
      for (const chunk of pattern(size / MB, MB)) hash.update(chunk);
      const cid = formatCid(cidFromDigest(CODEC_RAW, hash.digest()));
      const answer = await upload(server.url, token, pattern(size / MB, MB));
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const blob = answer.body.blob as { ref: { $link: string }; size: number; mimeType: string };
      assert.equal(blob.ref.$link, cid);
      assert.equal(blob.size, size);
      const uploadPeak = peak;

      await agent.com.atproto.repo.createRecord({
        repo: agent.session!.did,
        collection: 'com.example.file',
        record: { $type: 'com.example.file', file: { $type: 'blob', ...blob } },
      });
      const res = await fetch(`${server.url}/xrpc/com.atproto.sync.getBlob?did=${agent.session!.did}&cid=${cid}`);
      assert.equal(res.status, 200);
      const download = createHash('sha256');
      let received = 0;
      for await (const part of res.body! as unknown as AsyncIterable<Uint8Array>) {
        download.update(part);
        received += part.length;
      }
      assert.equal(received, size);
      assert.equal(formatCid(cidFromDigest(CODEC_RAW, download.digest())), cid);

      const bound = 200 * MB;
      assert.ok(uploadPeak - baseline < bound, `upload grew RSS by ${Math.round((uploadPeak - baseline) / MB)} MB`);
      assert.ok(peak - baseline < bound, `download grew RSS by ${Math.round((peak - baseline) / MB)} MB`);
    } finally {
      clearInterval(sampler);
    }
  });
});
