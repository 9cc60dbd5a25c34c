/**
 * `npm run bench -- blobs`: uploadBlob and getBlob throughput of Portage and the reference PDS
 * (@atproto/dev-env's TestPds), each with blobs on disk and in one S3-compatible server (moto,
 * as the tests use), in one run. Each server runs in a process of its own on one shared PLC
 * directory; the client is this process. Blobs are 1 MB of random bytes, uploaded 4 at a time,
 * referenced by records (so they are permanent), then downloaded 8 at a time; the upload figure
 * includes nothing but uploadBlob calls.
 * Options: --blobs 60 (per server) --size 1048576
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startS3Server } from '../test/support/s3-server.ts';
import {
  announceReady,
  benchNodeArgs,
  closeOnSigterm,
  freePort,
  startBenchPortage,
  startBenchReference,
  startChildServer,
} from './lib/child-server.ts';
import { settle } from './lib/machine.ts';
import { report, writeResults } from './lib/report.ts';

type Side = 'portage' | 'reference';
type Store = 'disk' | 's3';

interface ServeOptions {
  plcUrl: string;
  dataDir: string;
  /** The S3 server's endpoint and bucket, for the S3 store. */
  s3?: { endpoint: string; bucket: string };
}

const BLOB_LIMIT = 64 * 1024 * 1024;

/** One server in this process; prints READY <url> and serves until SIGTERM. */
async function serve(side: Side, opts: ServeOptions): Promise<void> {
  let url: string;
  let close: () => Promise<void>;
  if (side === 'portage') {
    const env: Record<string, string> = { PDS_BLOB_UPLOAD_LIMIT: String(BLOB_LIMIT) };
    if (opts.s3) {
      Object.assign(env, {
        PDS_BLOBSTORE_S3_BUCKET: opts.s3.bucket,
        PDS_BLOBSTORE_S3_REGION: 'us-east-1',
        PDS_BLOBSTORE_S3_ENDPOINT: opts.s3.endpoint,
        PDS_BLOBSTORE_S3_FORCE_PATH_STYLE: 'true',
        PDS_BLOBSTORE_S3_ACCESS_KEY_ID: 'test',
        PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY: 'test',
      });
    }
    const pds = await startBenchPortage({ plcUrl: opts.plcUrl, dataDir: opts.dataDir, env });
    url = pds.localUrl;
    close = () => pds.close();
  } else {
    const s3 = opts.s3
      ? {
          blobstoreDiskLocation: undefined,
          blobstoreS3Bucket: opts.s3.bucket,
          blobstoreS3Region: 'us-east-1',
          blobstoreS3Endpoint: opts.s3.endpoint,
          blobstoreS3ForcePathStyle: true,
          blobstoreS3AccessKeyId: 'test',
          blobstoreS3SecretAccessKey: 'test',
        }
      : {};
    const pds = await startBenchReference({ plcUrl: opts.plcUrl, blobUploadLimit: BLOB_LIMIT, ...s3 });
    url = pds.url;
    close = () => pds.close();
  }
  announceReady(url);
  closeOnSigterm(close);
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 32 });

function call(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer; token?: string } = {},
): Promise<{ status: number; body: Buffer }> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers['content-length'] = String(Buffer.byteLength(init.body));
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: init.method ?? 'GET', headers, agent: keepAlive }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

async function pool(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await task(next++);
    }),
  );
}

/** Uploads and downloads on one server; MB/s of each. */
async function workload(url: string, blobs: Buffer[]): Promise<{ uploadMBps: number; getMBps: number }> {
  const created = await call(`${url}/xrpc/com.atproto.server.createAccount`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      handle: `blobs${Date.now() % 100000}.test`,
      email: 'blobs@example.com',
      password: 'bench-password',
    }),
  });
  if (created.status !== 200) throw new Error(`createAccount: ${created.status} ${created.body}`);
  const { did, accessJwt: token } = JSON.parse(created.body.toString()) as { did: string; accessJwt: string };
  const upload = async (bytes: Buffer) => {
    const res = await call(`${url}/xrpc/com.atproto.repo.uploadBlob`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes,
      token,
    });
    if (res.status !== 200) throw new Error(`uploadBlob: ${res.status} ${res.body}`);
    return (JSON.parse(res.body.toString()) as { blob: unknown }).blob;
  };
  // Untimed warm-up, on both sides alike.
  for (let i = 0; i < 4; i++) await upload(randomBytes(blobs[0]!.length));
  const refs: unknown[] = [];
  const MB = blobs.reduce((n, b) => n + b.length, 0) / 1e6;
  let t = performance.now();
  await pool(blobs.length, 4, async (i) => {
    refs[i] = await upload(blobs[i]!);
  });
  const uploadMBps = MB / ((performance.now() - t) / 1000);
  // Records make the blobs permanent, so getBlob serves them.
  for (let i = 0; i < refs.length; i += 50) {
    const writes = refs.slice(i, i + 50).map((file) => ({
      $type: 'com.atproto.repo.applyWrites#create',
      collection: 'com.example.file',
      value: { $type: 'com.example.file', file },
    }));
    const res = await call(`${url}/xrpc/com.atproto.repo.applyWrites`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ repo: did, writes }),
      token,
    });
    if (res.status !== 200) throw new Error(`applyWrites: ${res.status} ${res.body}`);
  }
  const cids = refs.map((r) => (r as { ref: { $link: string } }).ref.$link);
  await settle();
  t = performance.now();
  await pool(cids.length, 8, async (i) => {
    const res = await call(`${url}/xrpc/com.atproto.sync.getBlob?did=${did}&cid=${cids[i]}`);
    if (res.status !== 200 || res.body.length !== blobs[i]!.length) throw new Error(`getBlob: ${res.status}`);
  });
  const getMBps = MB / ((performance.now() - t) / 1000);
  return { uploadMBps, getMBps };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { blobs: { type: 'string', default: '60' }, size: { type: 'string', default: String(1024 * 1024) } },
  });
  const blobs = Array.from({ length: Number(values.blobs) }, () => randomBytes(Number(values.size)));
  const dir = mkdtempSync(join(tmpdir(), 'portage-bench-blobs-'));
  process.env.TMPDIR = dir; // the reference writes under os.tmpdir() and never cleans up
  const s3 = await startS3Server();
  const plc = await startChildServer(import.meta.filename, ['--plc'], {
    env: { ...process.env, TMPDIR: dir },
    label: 'PLC directory',
  });
  const results: Record<string, { uploadMBps: number; getMBps: number }> = {};
  try {
    // Alternate which side goes first, so neither always runs on the warmer machine.
    const runs: [Store, Side][] = [
      ['disk', 'portage'],
      ['disk', 'reference'],
      ['s3', 'reference'],
      ['s3', 'portage'],
    ];
    for (const [store, side] of runs) {
      const bucket = `${side}-${store}`;
      if (store === 's3') await s3.createBucket(bucket);
      const options: ServeOptions = {
        plcUrl: plc.ready,
        dataDir: join(dir, bucket),
        s3: store === 's3' ? { endpoint: s3.endpoint, bucket } : undefined,
      };
      const server = await startChildServer(import.meta.filename, ['--server', side, JSON.stringify(options)], {
        env: { ...process.env, TMPDIR: dir },
        nodeArgs: benchNodeArgs(side),
        label: `${side} server`,
      });
      try {
        process.stderr.write(`bench blobs: ${side} with blobs on ${store}\n`);
        await settle();
        results[`${side}-${store}`] = await workload(server.ready, blobs);
      } finally {
        await server.stop();
      }
    }
  } finally {
    keepAlive.destroy();
    await plc.stop();
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const size = `${Math.round(Number(values.size) / 1024)} KB`;
  for (const store of ['disk', 's3'] as const) {
    const p = results[`portage-${store}`]!;
    const r = results[`reference-${store}`]!;
    report({
      bench: 'blobs',
      metric: `uploadBlob, blobs on ${store} (${size}, 4 in flight)`,
      unit: 'MB/s',
      better: 'higher',
      portage: p.uploadMBps,
      reference: r.uploadMBps,
    });
    report({
      bench: 'blobs',
      metric: `getBlob, blobs on ${store} (${size}, 8 in flight)`,
      unit: 'MB/s',
      better: 'higher',
      portage: p.getMBps,
      reference: r.getMBps,
    });
  }
  process.stderr.write(`wrote ${writeResults('blobs')}\n`);
}

// Dispatch last: the constants above must be initialised before main() runs.
const argv = process.argv.slice(2);
if (argv[0] === '--plc') {
  const { TestPlc } = await import('@atproto/dev-env');
  const plc = await TestPlc.create({ port: await freePort() });
  announceReady(plc.url);
  closeOnSigterm(() => plc.close());
} else if (argv[0] === '--server') {
  await serve(argv[1] as Side, JSON.parse(argv[2]!) as ServeOptions);
} else {
  await main();
}
