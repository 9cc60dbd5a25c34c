/**
 * `npm run bench -- firehose`: the firehose of Portage beside the reference PDS (@atproto/dev-env)
 * while writes run. Three processes per measurement: the server, a subscriber process holding
 * 1, 100 or 1,000 live WebSocket subscriptions, and this process writing records
 * (createRecord, 8 in flight). Reported per subscriber count:
 *   - events delivered per second, summed over all subscribers, from the first write until
 *     every subscriber has every event;
 *   - commit-to-delivery latency p50 / p99: arrival time minus the event's `time` (set by both
 *     servers when the commit is sequenced), on up to 20 sampled subscribers.
 *   - records delivered per second: the same, counting record writes (Portage groups concurrent
 *     writes to one account into one commit, so it sends fewer, larger events).
 * Both servers run side by side and the measurements alternate between them; each figure is the
 * best of --rounds rounds (the machine is shared, so single runs are noisy).
 * Options: --writes 400 --counts 1,100,1000 --rounds 2
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeFirst } from '@atcute/cbor';
import WebSocket from 'ws';
import {
  announceReady,
  closeOnSigterm,
  freePort,
  benchNodeArgs,
  startBenchPortage,
  startBenchReference,
  startChildServer,
} from './lib/child-server.ts';
import { report, writeResults } from './lib/report.ts';

type Side = 'portage' | 'reference';

// --- server process --------------------------------------------------------------------------

/** One server in this process; prints READY <http url> <ws url> and serves until SIGTERM. */
async function serve(side: Side, opts: { plcUrl: string; dataDir: string }): Promise<void> {
  let url: string;
  let close: () => Promise<void>;
  if (side === 'portage') {
    const pds = await startBenchPortage(opts);
    url = pds.localUrl;
    close = () => pds.close();
  } else {
    const pds = await startBenchReference({ plcUrl: opts.plcUrl });
    url = pds.url;
    close = () => pds.close();
  }
  // Both serve subscribeRepos on the HTTP port.
  const wsUrl = url.replace('http://', 'ws://');
  announceReady(`${url} ${wsUrl}`);
  closeOnSigterm(close);
}

interface Server {
  url: string;
  wsUrl: string;
  stop(): Promise<void>;
}

async function startServer(side: Side, plcUrl: string, dataDir: string, env: NodeJS.ProcessEnv): Promise<Server> {
  const child = await startChildServer(import.meta.filename, ['--server', side, JSON.stringify({ plcUrl, dataDir })], {
    env,
    nodeArgs: benchNodeArgs(side),
    label: `${side} server`,
  });
  const [url, wsUrl] = child.ready.split(' ');
  return { url: url!, wsUrl: wsUrl!, stop: child.stop };
}

// --- subscriber process ----------------------------------------------------------------------

interface SubscriberStats {
  counts: number[];
  /** Record operations seen by subscriber 0 (a PDS may group concurrent writes into one commit). */
  ops0: number;
  lastArrivalMs: number;
  latenciesMs: number[];
}

const SAMPLED = 20;

/** Holds `n` live subscriptions; answers 'stats' over IPC. */
async function subscribers(wsUrl: string, n: number): Promise<void> {
  const counts = new Array<number>(n).fill(0);
  const latencies: number[] = [];
  let lastArrivalMs = 0;
  let ops0 = 0;
  const url = `${wsUrl}/xrpc/com.atproto.sync.subscribeRepos`;
  const sockets: WebSocket[] = [];
  await Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(url, { perMessageDeflate: false });
          sockets.push(ws);
          ws.on('open', () => resolve());
          ws.on('error', reject);
          ws.on('message', (data: Buffer) => {
            const now = Date.now();
            counts[i]!++;
            lastArrivalMs = now;
            if (i < SAMPLED) {
              const [header, rest] = decodeFirst(data);
              if (header.t !== '#commit') return;
              const [body] = decodeFirst(rest);
              latencies.push(now - Date.parse(body.time));
              if (i === 0) ops0 += body.ops.length;
            }
          });
        }),
    ),
  );
  process.send!({ type: 'ready' });
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'stats') {
      const stats: SubscriberStats = { counts, ops0, lastArrivalMs, latenciesMs: latencies };
      process.send!({ type: 'stats', stats });
    } else if (msg.type === 'exit') {
      for (const ws of sockets) ws.terminate();
      process.exit(0);
    }
  });
}

class SubscriberProcess {
  private readonly child: ChildProcess;
  private constructor(child: ChildProcess) {
    this.child = child;
  }

  static start(wsUrl: string, n: number): Promise<SubscriberProcess> {
    const child = fork(import.meta.filename, ['--subscribers', wsUrl, String(n)], { stdio: 'inherit' });
    return new Promise((resolve, reject) => {
      child.once('message', () => resolve(new SubscriberProcess(child)));
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`subscriber process exited (${code})`)));
    });
  }

  stats(): Promise<SubscriberStats> {
    return new Promise((resolve) => {
      this.child.once('message', (msg: { stats: SubscriberStats }) => resolve(msg.stats));
      this.child.send({ type: 'stats' });
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.child.removeAllListeners('exit');
      this.child.once('exit', () => resolve());
      this.child.send({ type: 'exit' });
    });
  }
}

// --- writer (this process) -------------------------------------------------------------------

const keepAlive = new Agent({ keepAlive: true, maxSockets: 16 });

function postJson(url: string, body: unknown, token?: string): Promise<unknown> {
  const text = JSON.stringify(body);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
  };
  if (token) headers.authorization = `Bearer ${token}`;
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers, agent: keepAlive }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const out = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 0) >= 300) reject(new Error(`${url} -> ${res.statusCode} ${out.slice(0, 200)}`));
        else resolve(out ? JSON.parse(out) : undefined);
      });
    });
    req.on('error', reject);
    req.end(text);
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface LevelFigures {
  deliveredPerSec: number;
  /** Writes made visible to subscribers per second, summed over subscribers. */
  recordsPerSec: number;
  p50: number;
  p99: number;
}

async function measure(server: Server, n: number, writes: number, session: { did: string; token: string }) {
  const subs = await SubscriberProcess.start(server.wsUrl, n);
  try {
    const start = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < writes) {
          const i = next++;
          await postJson(
            `${server.url}/xrpc/com.atproto.repo.createRecord`,
            {
              repo: session.did,
              collection: 'app.bsky.feed.post',
              record: { $type: 'app.bsky.feed.post', text: `post ${i}`, createdAt: new Date().toISOString() },
            },
            session.token,
          );
        }
      }),
    );
    // Done when subscriber 0 has seen every write and every subscriber has as many events as it.
    const complete = (s: SubscriberStats) => s.ops0 >= writes && Math.min(...s.counts) >= s.counts[0]!;
    let stats = await subs.stats();
    for (let i = 0; i < 600 && !complete(stats); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      stats = await subs.stats();
    }
    const delivered = stats.counts.reduce((a, b) => a + b, 0);
    if (!complete(stats)) {
      process.stderr.write(
        `  warning: incomplete delivery (ops seen ${stats.ops0}/${writes}, min events ${Math.min(...stats.counts)}/${stats.counts[0]})\n`,
      );
    }
    const seconds = (stats.lastArrivalMs - start) / 1000;
    const sorted = stats.latenciesMs.sort((a, b) => a - b);
    const figures: LevelFigures = {
      deliveredPerSec: delivered / seconds,
      recordsPerSec: (writes * n) / seconds,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
    };
    process.stderr.write(`  ${n} subscribers: ${JSON.stringify(figures)}\n`);
    return figures;
  } finally {
    await subs.stop();
  }
}

function best(a: LevelFigures | undefined, b: LevelFigures): LevelFigures {
  if (!a) return b;
  return {
    deliveredPerSec: Math.max(a.deliveredPerSec, b.deliveredPerSec),
    recordsPerSec: Math.max(a.recordsPerSec, b.recordsPerSec),
    p50: Math.min(a.p50, b.p50),
    p99: Math.min(a.p99, b.p99),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      writes: { type: 'string', default: '400' },
      counts: { type: 'string', default: '1,100,1000' },
      rounds: { type: 'string', default: '2' },
    },
  });
  const rounds = Number(values.rounds);
  const writes = Number(values.writes);
  const counts = values.counts.split(',').map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'portage-bench-firehose-'));
  process.env.TMPDIR = dir; // the reference writes under os.tmpdir() and never cleans up
  const { TestPlc } = await import('@atproto/dev-env');
  const plc = await TestPlc.create({ port: await freePort() });
  const results: Record<Side, Record<number, LevelFigures>> = { portage: {}, reference: {} };
  const servers: Partial<Record<Side, { server: Server; session: { did: string; token: string } }>> = {};
  try {
    for (const side of ['portage', 'reference'] as const) {
      const server = await startServer(side, plc.url, join(dir, side), { ...process.env, TMPDIR: dir });
      const account = (await postJson(`${server.url}/xrpc/com.atproto.server.createAccount`, {
        handle: `bench-${side}.test`,
        email: `bench-${side}@example.com`,
        password: 'bench password',
      })) as { did: string; accessJwt: string };
      servers[side] = { server, session: { did: account.did, token: account.accessJwt } };
    }
    // Both servers stay up and the sides alternate, so load from elsewhere on the machine hits
    // both alike; each figure is the best of the rounds.
    for (let round = 0; round < rounds; round++) {
      for (const n of counts) {
        const order = (round + n) % 2 === 0 ? (['portage', 'reference'] as const) : (['reference', 'portage'] as const);
        for (const side of order) {
          process.stderr.write(`bench firehose: round ${round + 1}, ${side}\n`);
          const { server, session } = servers[side]!;
          results[side][n] = best(results[side][n], await measure(server, n, writes, session));
        }
      }
    }
  } finally {
    for (const entry of Object.values(servers)) await entry?.server.stop();
    await plc.close();
    rmSync(dir, { recursive: true, force: true });
  }
  for (const n of counts) {
    const p = results.portage[n]!;
    const r = results.reference[n]!;
    const label = `${n} subscriber${n === 1 ? '' : 's'}`;
    report({
      bench: 'firehose',
      metric: `events delivered, ${label}, writes running`,
      unit: 'events/s',
      better: 'higher',
      portage: p.deliveredPerSec,
      reference: r.deliveredPerSec,
    });
    report({
      bench: 'firehose',
      metric: `records delivered, ${label}, writes running`,
      unit: 'records/s',
      better: 'higher',
      portage: p.recordsPerSec,
      reference: r.recordsPerSec,
    });
    report({
      bench: 'firehose',
      metric: `commit-to-delivery p50, ${label}`,
      unit: 'ms',
      better: 'lower',
      portage: p.p50,
      reference: r.p50,
    });
    report({
      bench: 'firehose',
      metric: `commit-to-delivery p99, ${label}`,
      unit: 'ms',
      better: 'lower',
      portage: p.p99,
      reference: r.p99,
    });
  }
  process.stderr.write(`wrote ${writeResults('firehose')}\n`);
}

// Dispatch last: the constants above must be initialised before main() runs.
const argv = process.argv.slice(2);
if (argv[0] === '--server') {
  await serve(argv[1] as Side, JSON.parse(argv[2]!) as { plcUrl: string; dataDir: string });
} else if (argv[0] === '--subscribers') {
  await subscribers(argv[1]!, Number(argv[2]));
} else {
  await main();
}
