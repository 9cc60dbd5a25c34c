/**
 * `npm run bench -- pds`: the same client workload against Portage and the reference PDS
 * (@atproto/dev-env), each server in its own process, sharing one PLC directory, client in this
 * process on the same machine:
 *   createRecord with 8 in flight, applyWrites of 200, getRecord with 16 in flight,
 *   listRecords paging, getRepo MB/s on a 20k-record repo (downloaded by a client process of
 *   its own), uploadBlob MB/s (256 KB, 4 in flight), and the server's idle and loaded RSS.
 * getRecord and uploadBlob run an untimed warm-up first, on both sides alike. Every phase starts
 * after the machine settled (settle()), and prints how many cores the server and the client
 * kept busy: a figure near the core count means the phase was bound by the CPU of the machine.
 * Options: --records 20000 --creates 1000 --gets 10000 --blobs 600
 *          --side portage|reference (run one side only, for profiling; results are not written)
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import {
  announceReady,
  closeOnSigterm,
  freePort,
  benchNodeArgs,
  startBenchPortage,
  startBenchReference,
  startChildServer,
} from './lib/child-server.ts';
import { measureCpu, settle } from './lib/machine.ts';
import { report, writeResults } from './lib/report.ts';

type Side = 'portage' | 'reference';

const execFileAsync = promisify(execFile);

/** One server in this process; prints READY <url> and serves until SIGTERM. */
async function serve(side: Side, opts: { plcUrl: string; dataDir: string }): Promise<void> {
  const blobLimit = 64 * 1024 * 1024;
  let url: string;
  let close: () => Promise<void>;
  if (side === 'portage') {
    const pds = await startBenchPortage({ ...opts, env: { PDS_BLOB_UPLOAD_LIMIT: String(blobLimit) } });
    url = pds.localUrl;
    close = () => pds.close();
  } else {
    const pds = await startBenchReference({ plcUrl: opts.plcUrl, blobUploadLimit: blobLimit });
    url = pds.url;
    close = () => pds.close();
  }
  announceReady(url);
  closeOnSigterm(close);
}

interface Server {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function startServer(side: Side, plcUrl: string, dataDir: string, env: NodeJS.ProcessEnv): Promise<Server> {
  // BENCH_SERVER_PROF=<dir> writes a CPU profile of each server process there.
  const child = await startChildServer(import.meta.filename, ['--server', side, JSON.stringify({ plcUrl, dataDir })], {
    env,
    nodeArgs: benchNodeArgs(side, 'BENCH_SERVER_PROF'),
    label: `${side} server`,
  });
  return { url: child.ready, pid: child.pid, stop: child.stop };
}

/** Current and peak resident set size of a process, in MB (Linux /proc). */
function rssOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) =>
    Number(/(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(name)) ?? '')?.[1] ?? 0);
  return { rss: kb('VmRSS:') / 1024, peak: kb('VmHWM:') / 1024 };
}

/**
 * Runs `total` tasks with at most `concurrency` in flight; returns tasks per second. A warm-up
 * of untimed tasks (indices after `total`, so uploads stay distinct) runs first: a phase of a
 * fraction of a second would otherwise measure the JIT warming up and the first page faults of
 * fresh buffers more than the server's steady rate, and swing widely from run to run.
 */
async function throughput(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
  warmup = Math.max(concurrency, Math.ceil(total / 10)),
): Promise<number> {
  const runPool = async (from: number, to: number) => {
    let next = from;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < to) await task(next++);
      }),
    );
  };
  await runPool(total, total + warmup);
  const start = performance.now();
  await runPool(0, total);
  return total / ((performance.now() - start) / 1000);
}

/**
 * Downloads `url` `warmups` times untimed (JIT, caches), then `runs` times; prints the best MB/s.
 * It runs in a process of its own: one export of a 20k-record repo takes tens of milliseconds,
 * and in the benchmark's own process (its heap holding the PLC directory and the earlier
 * phases' state) the client's garbage collection alone halved some runs against a fast server.
 */
async function download(url: string, warmups: number, runs: number): Promise<void> {
  let bestMBps = 0;
  let MB = 0;
  for (let i = -warmups; i < runs; i++) {
    const t = performance.now();
    const res = await call(url);
    let bytes = 0;
    for await (const chunk of res.body) bytes += chunk.length;
    MB = bytes / 1e6;
    if (i >= 0) bestMBps = Math.max(bestMBps, MB / ((performance.now() - t) / 1000));
  }
  keepAlive.destroy();
  process.stdout.write(JSON.stringify({ bestMBps, MB }));
}

/**
 * The client: node:http with keep-alive sockets (cheaper per request than fetch, so on a shared
 * 2-core machine more of the CPU goes to the server being measured; the same for both sides).
 */
const keepAlive = new Agent({ keepAlive: true, maxSockets: 64 });

interface Reply {
  status: number;
  body: AsyncIterable<Uint8Array>;
  arrayBuffer(): Promise<Buffer>;
  json(): Promise<unknown>;
}

function call(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer; token?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers['content-length'] = String(Buffer.byteLength(init.body));
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: init.method ?? 'GET', headers, agent: keepAlive }, (res) => {
      const read = async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of res) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks);
      };
      const reply: Reply = {
        status: res.statusCode ?? 0,
        body: res,
        arrayBuffer: read,
        json: async () => JSON.parse((await read()).toString('utf8')) as unknown,
      };
      if (reply.status >= 200 && reply.status < 300) resolve(reply);
      else
        void read().then((b) =>
          reject(new Error(`${url.split('?')[0]} -> ${reply.status} ${b.toString('utf8').slice(0, 300)}`)),
        );
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

const post = (i: number) => ({
  $type: 'app.bsky.feed.post',
  text: `post number ${i}: ${'lorem ipsum '.repeat(6)}`,
  createdAt: new Date().toISOString(),
});

interface Figures {
  createPerSec: number;
  applyWritesRecordsPerSec: number;
  getRecordPerSec: number;
  listRecordsPerSec: number;
  getRepoMBps: number;
  repoMB: number;
  uploadMBps: number;
  idleRssMb: number;
  loadedRssMb: number;
}

interface Session {
  server: Server;
  base: string;
  did: string;
  token: string;
  rkeys: string[];
  idleRssMb: number;
}

const json = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

async function openSession(server: Server): Promise<Session> {
  const base = server.url;
  const account = (await (
    await call(
      `${base}/xrpc/com.atproto.server.createAccount`,
      json({ handle: `bench${Date.now() % 100000}.test`, email: 'bench@example.com', password: 'bench-password' }),
    )
  ).json()) as { did: string; accessJwt: string };
  return { server, base, did: account.did, token: account.accessJwt, rkeys: [], idleRssMb: rssOf(server.pid).rss };
}

type Opts = { records: number; creates: number; gets: number; blobs: number };

/**
 * The workload in phases. Each phase runs on one server and then at once on the other, so
 * both see the same machine: other work on a shared machine drifts over minutes, and running
 * the whole workload on one side first would hand that drift to the comparison.
 */
const phases: {
  name: string;
  /** The load comes from a child process, whose CPU this process does not see. */
  clientInChild?: boolean;
  run(s: Session, opts: Opts): Promise<Partial<Figures>>;
}[] = [
  {
    name: 'createRecord (8 in flight)',
    async run({ base, did, token }, opts) {
      const createPerSec = await throughput(
        opts.creates,
        8,
        async (i) => {
          const body = { repo: did, collection: 'app.bsky.feed.post', record: post(i) };
          await (await call(`${base}/xrpc/com.atproto.repo.createRecord`, { ...json(body), token })).arrayBuffer();
        },
        0, // no warm-up: every record created counts towards the repo of --records
      );
      return { createPerSec };
    },
  },
  {
    name: 'applyWrites of 200',
    async run({ base, did, token }, opts) {
      const batch = (from: number) => ({
        repo: did,
        writes: Array.from({ length: 200 }, (_, j) => ({
          $type: 'com.atproto.repo.applyWrites#create',
          collection: 'app.bsky.feed.post',
          value: post(from + j),
        })),
      });
      const batches = Math.ceil(Math.max(200, opts.records - opts.creates) / 200);
      const t0 = performance.now();
      for (let b = 0; b < batches; b++) {
        await (
          await call(`${base}/xrpc/com.atproto.repo.applyWrites`, { ...json(batch(b * 200)), token })
        ).arrayBuffer();
      }
      return { applyWritesRecordsPerSec: (batches * 200) / ((performance.now() - t0) / 1000) };
    },
  },
  {
    name: 'listRecords paging',
    async run(session) {
      const { base, did } = session;
      const rkeys: string[] = [];
      const t1 = performance.now();
      let cursor: string | undefined;
      do {
        const q = new URLSearchParams({ repo: did, collection: 'app.bsky.feed.post', limit: '100' });
        if (cursor) q.set('cursor', cursor);
        const page = (await (await call(`${base}/xrpc/com.atproto.repo.listRecords?${q}`)).json()) as {
          records: { uri: string }[];
          cursor?: string;
        };
        for (const r of page.records) rkeys.push(r.uri.split('/').pop()!);
        cursor = page.records.length > 0 ? page.cursor : undefined;
      } while (cursor);
      session.rkeys = rkeys;
      return { listRecordsPerSec: rkeys.length / ((performance.now() - t1) / 1000) };
    },
  },
  {
    name: 'getRecord (16 in flight)',
    async run({ base, did, rkeys }, opts) {
      const getRecordPerSec = await throughput(opts.gets, 16, async (i) => {
        const q = new URLSearchParams({
          repo: did,
          collection: 'app.bsky.feed.post',
          rkey: rkeys[(i * 7919) % rkeys.length]!,
        });
        await (await call(`${base}/xrpc/com.atproto.repo.getRecord?${q}`)).arrayBuffer();
      });
      return { getRecordPerSec };
    },
  },
  {
    name: 'getRepo (best of 5, after 2 warm-up)',
    clientInChild: true,
    async run({ base, did }) {
      const url = `${base}/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(did)}`;
      const { stdout } = await execFileAsync(process.execPath, [import.meta.filename, '--download', url, '2', '5']);
      const { bestMBps, MB } = JSON.parse(stdout) as { bestMBps: number; MB: number };
      return { getRepoMBps: bestMBps, repoMB: MB };
    },
  },
  {
    name: 'uploadBlob of 256 KB (4 in flight)',
    async run({ base, token }, opts) {
      const blobs = Array.from({ length: 8 }, () => randomBytes(256 * 1024));
      const uploadsPerSec = await throughput(opts.blobs, 4, async (i) => {
        const body = Buffer.concat([
          blobs[i % blobs.length]!.subarray(0, 256 * 1024 - 4),
          Buffer.from(Uint32Array.of(i).buffer),
        ]);
        await (
          await call(`${base}/xrpc/com.atproto.repo.uploadBlob`, {
            method: 'POST',
            headers: { 'content-type': 'image/jpeg' },
            body,
            token,
          })
        ).arrayBuffer();
      });
      return { uploadMBps: (uploadsPerSec * 256 * 1024) / 1e6 };
    },
  },
];

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      records: { type: 'string', default: '20000' },
      creates: { type: 'string', default: '1000' },
      gets: { type: 'string', default: '10000' },
      blobs: { type: 'string', default: '600' },
      side: { type: 'string' },
    },
  });
  const sides: Side[] =
    values.side === 'portage' || values.side === 'reference' ? [values.side] : ['portage', 'reference'];
  const opts = {
    records: Number(values.records),
    creates: Number(values.creates),
    gets: Number(values.gets),
    blobs: Number(values.blobs),
  };
  const dir = mkdtempSync(join(tmpdir(), 'portage-bench-pds-'));
  process.env.TMPDIR = dir; // the reference writes under os.tmpdir() and never cleans up
  // The PLC runs in a child too: this process is the load client of every phase, and loading the
  // reference into it would make its every garbage collection walk a far larger heap.
  const plc = await startChildServer(import.meta.filename, ['--plc'], {
    env: { ...process.env, TMPDIR: dir },
    label: 'PLC directory',
  });
  const plcUrl = plc.ready;
  const results = { portage: {}, reference: {} } as Record<Side, Figures>;
  const servers: Partial<Record<Side, Server>> = {};
  try {
    const sessions = {} as Record<Side, Session>;
    for (const side of sides) {
      servers[side] = await startServer(side, plcUrl, join(dir, side), { ...process.env, TMPDIR: dir });
      sessions[side] = await openSession(servers[side]);
    }
    for (const [i, phase] of phases.entries()) {
      // Alternate which side goes first, so neither always runs on the warmer machine.
      const order: Side[] = i % 2 === 0 ? ['portage', 'reference'] : ['reference', 'portage'];
      for (const side of order.filter((s) => sides.includes(s))) {
        process.stderr.write(`bench pds: ${phase.name} on ${side}`);
        await settle();
        // The server and this process (the load client).
        const { result, cpuSeconds, seconds } = await measureCpu([sessions[side].server.pid, process.pid], () =>
          phase.run(sessions[side], opts),
        );
        Object.assign(results[side], result);
        // How much of the machine the phase used: a phase near the core count is bound by the CPU.
        process.stderr.write(
          cpuSeconds === undefined || phase.clientInChild
            ? '\n'
            : `: server and client kept ${(cpuSeconds / seconds).toFixed(2)} cores busy\n`,
        );
      }
    }
    for (const side of sides) {
      results[side].idleRssMb = sessions[side].idleRssMb;
      results[side].loadedRssMb = rssOf(sessions[side].server.pid).peak;
    }
  } finally {
    for (const server of Object.values(servers)) await server.stop();
    await plc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const p = results.portage;
  const r = results.reference;
  const fig = (metric: string, unit: string, better: 'higher' | 'lower', key: keyof Figures) =>
    report({ bench: 'pds', metric, unit, better, portage: p[key] ?? 0, reference: r[key] ?? null });
  fig('createRecord (8 in flight)', 'records/s', 'higher', 'createPerSec');
  fig('applyWrites of 200', 'records/s', 'higher', 'applyWritesRecordsPerSec');
  fig('getRecord (16 in flight)', 'requests/s', 'higher', 'getRecordPerSec');
  fig('listRecords paging (limit 100)', 'records/s', 'higher', 'listRecordsPerSec');
  fig(`getRepo (${opts.records} records)`, 'MB/s', 'higher', 'getRepoMBps');
  fig('getRepo CAR size', 'MB', 'lower', 'repoMB');
  fig('uploadBlob (256 KB, 4 in flight)', 'MB/s', 'higher', 'uploadMBps');
  fig('server RSS idle', 'MB', 'lower', 'idleRssMb');
  fig('server RSS loaded (peak)', 'MB', 'lower', 'loadedRssMb');
  if (sides.length === 2) process.stderr.write(`wrote ${writeResults('pds')}\n`);
}

// Dispatch last: the constants above must be initialised before main() runs.
const argv = process.argv.slice(2);
if (argv[0] === '--plc') {
  const { TestPlc } = await import('@atproto/dev-env');
  const plc = await TestPlc.create({ port: await freePort() });
  announceReady(plc.url);
  closeOnSigterm(() => plc.close());
} else if (argv[0] === '--server') {
  await serve(argv[1] as Side, JSON.parse(argv[2]!) as { plcUrl: string; dataDir: string });
} else if (argv[0] === '--download') {
  await download(argv[1]!, Number(argv[2]), Number(argv[3]));
} else {
  await main();
}
