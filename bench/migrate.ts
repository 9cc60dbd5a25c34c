/**
 * Migration benchmark: an account with 20,000 records and 200 blobs of 256 KB, moved between
 * reference PDSes (@atproto/dev-env, one shared PLC), by Portage's engine and by the
 * reference-style flow (the canonical sequence with @atproto/api, one blob at a time), phase by
 * phase. Each reference PDS runs in its own process (the PLC in this one), and each client in its
 * own child process, so nobody shares an event loop and each side's peak RSS is its own.
 *
 * To move identical data, an account is created on A; the reference flow moves it A -> B, then
 * Portage moves it B -> C (same records, same blobs). Portage runs with its local backup on, as
 * the CLI does by default. Two more rows move the same account on with Portage's engine into
 * Portage's PDS (two of them, each in its own process, on the same PLC): reference -> Portage
 * (C -> P1), then Portage -> Portage (P1 -> P2), each beside the reference-style flow into the
 * reference PDS.
 *
 * All of that happens --rounds times (3), each round with an account of its own, and every figure
 * is the median of the rounds, on both sides alike: on a shared two-core machine a single run
 * can be 15% off either way.
 *
 * Options: --records <n> (20000) --blobs <n> (200) --blob-kb <n> (256) --rounds <n> (3).
 * `--into-portage-only` skips the reference-style flow and B -> C: the engine moves each round's
 * account A -> P1 and P1 -> P2 (for quick measurements of those two rows; nothing is written to
 * results).
 * Every timed move starts after the machine settled (settle()), and prints the CPU both servers
 * and the client used, and so how many of the cores the move kept busy.
 * BENCH_TRACE=1 prints every request of the engine's runs with its start and end (ms since the
 * run began).
 * `--rss-blobs <n>` additionally moves n blobs of 5 MB with Portage alone and reports its peak
 * RSS (n = 200 is the 1 GB target; off by default because creating them takes minutes).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, runClientChild } from './lib/child-server.ts';
import { measureCpu, settle } from './lib/machine.ts';
import { fetchToken, fillAccount, type ServerHandle, startServerProcess } from './lib/migration-servers.ts';
import { median, peakRssMb, report, writeResults } from './lib/report.ts';

interface ClientJob {
  side: 'portage' | 'reference';
  did: string;
  fromPds: string;
  to: string;
  plcUrl: string;
  password: string;
  tokenUrl: string;
  backupDir?: string;
}

/** A client run, with both servers' CPU seconds while it ran (undefined without /proc). */
type MeasuredMove = ClientResult & { serverCpuSeconds: number | undefined };

interface ClientResult {
  phases: Record<string, number>;
  total: number;
  peakRssMb: number;
  /** CPU time the client process used (user + system), in seconds, start-up included. */
  cpuSeconds: number;
  /** The part of cpuSeconds used from the start of the move (what `total` times) to its end. */
  runCpuSeconds: number;
}

const argv = process.argv.slice(2);
if (argv[0] === '--client') {
  const job = JSON.parse(argv[1]!) as ClientJob;
  const result = job.side === 'portage' ? await runPortage(job) : await runReference(job);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
} else {
  await main();
}

async function runPortage(job: ClientJob): Promise<ClientResult> {
  const { migrate } = await import('../packages/migrate/src/engine.ts');
  const { MemoryStorage } = await import('../packages/migrate/src/storage.ts');
  const { DirectoryBackup } = await import('../packages/migrate/src/backup.node.ts');
  const { startMemoryGuard } = await import('../packages/migrate/src/memory.node.ts');
  startMemoryGuard(); // as the CLI does
  if (process.env.BENCH_MEMLOG) {
    setInterval(() => {
      const m = process.memoryUsage();
      process.stderr.write(
        `mem rss=${(m.rss / 1048576) | 0} heap=${(m.heapUsed / 1048576) | 0} ext=${(m.external / 1048576) | 0} ab=${(m.arrayBuffers / 1048576) | 0}\n`,
      );
    }, 250).unref();
  }
  const started = new Map<string, number>();
  const phases: Record<string, number> = {};
  const t0 = performance.now();
  const cpuAtStart = cpuSeconds();
  let fetchImpl: typeof fetch | undefined;
  if (process.env.BENCH_TRACE) {
    fetchImpl = async (input, init) => {
      const begin = performance.now() - t0;
      const url = new URL(input instanceof Request ? input.url : String(input));
      const res = await fetch(input, init);
      const end = performance.now() - t0;
      process.stderr.write(
        `trace ${begin.toFixed(0).padStart(5)} ${end.toFixed(0).padStart(5)} ${url.port} ${url.pathname.replace('/xrpc/', '')}\n`,
      );
      return res;
    };
  }
  const result = await migrate(
    {
      from: job.did,
      fromPds: job.fromPds,
      to: job.to,
      plcUrl: job.plcUrl,
      concurrency: Number(process.env.BENCH_CONCURRENCY ?? 8),
    },
    {
      storage: new MemoryStorage(),
      credentials: {
        oldPassword: async () => job.password,
        newPassword: async () => job.password,
        authFactorToken: async () => undefined,
        plcToken: async (requested) => (requested ? fetchToken(job.tokenUrl, job.did) : undefined),
      },
      onEvent: (e) => {
        if (e.type === 'step-started') started.set(e.step, performance.now());
        if (e.type === 'step-done') phases[e.step] = (performance.now() - started.get(e.step)!) / 1000;
        if (process.env.BENCH_TRACE && (e.type === 'step-started' || e.type === 'step-done')) {
          process.stderr.write(`trace ${(performance.now() - t0).toFixed(0).padStart(5)} ${e.type} ${e.step}\n`);
        }
      },
      ...(fetchImpl ? { fetch: fetchImpl } : {}),
      openBackup: job.backupDir ? (did) => new DirectoryBackup(job.backupDir!, did).open() : undefined,
    },
  );
  if (result.status !== 'done') throw new Error(`portage migration ended ${result.status}: ${result.message}`);
  return clientResult(phases, t0, cpuAtStart);
}

/** The canonical sequence as the reference documents it, one request at a time. */
async function runReference(job: ClientJob): Promise<ClientResult> {
  const { AtpAgent } = await import('@atproto/api');
  const phases: Record<string, number> = {};
  const time = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    const value = await fn();
    phases[name] = (phases[name] ?? 0) + (performance.now() - start) / 1000;
    return value;
  };
  const t0 = performance.now();
  const cpuAtStart = cpuSeconds();
  const oldAgent = new AtpAgent({ service: job.fromPds });
  const newAgent = new AtpAgent({ service: job.to });
  await time('setup', async () => {
    await oldAgent.login({ identifier: job.did, password: job.password });
    const desc = await newAgent.com.atproto.server.describeServer();
    const auth = await oldAgent.com.atproto.server.getServiceAuth({
      aud: desc.data.did,
      lxm: 'com.atproto.server.createAccount',
    });
    const handle = oldAgent.session!.handle;
    await newAgent.createAccount(
      { did: job.did, handle, email: oldAgent.session!.email!, password: job.password },
      { headers: { authorization: `Bearer ${auth.data.token}` } },
    );
    await newAgent.login({ identifier: job.did, password: job.password });
  });
  await time('repo', async () => {
    const repo = await oldAgent.com.atproto.sync.getRepo({ did: job.did });
    await newAgent.com.atproto.repo.importRepo(repo.data, { encoding: 'application/vnd.ipld.car' });
  });
  await time('blobs', async () => {
    let cursor: string | undefined;
    do {
      const page = await newAgent.com.atproto.repo.listMissingBlobs({ cursor, limit: 100 });
      for (const { cid } of page.data.blobs) {
        const blob = await oldAgent.com.atproto.sync.getBlob({ did: job.did, cid });
        await newAgent.com.atproto.repo.uploadBlob(blob.data, { encoding: blob.headers['content-type'] });
      }
      cursor = page.data.cursor;
    } while (cursor);
  });
  await time('preferences', async () => {
    const prefs = await oldAgent.app.bsky.actor.getPreferences();
    await newAgent.app.bsky.actor.putPreferences(prefs.data);
  });
  await time('identity', async () => {
    const creds = await newAgent.com.atproto.identity.getRecommendedDidCredentials();
    await oldAgent.com.atproto.identity.requestPlcOperationSignature();
    const token = await fetchToken(job.tokenUrl, job.did);
    const op = await oldAgent.com.atproto.identity.signPlcOperation({ token, ...creds.data });
    await newAgent.com.atproto.identity.submitPlcOperation({ operation: op.data.operation });
  });
  await time('activate', async () => {
    await newAgent.com.atproto.server.activateAccount();
    await oldAgent.com.atproto.server.deactivateAccount({});
  });
  return clientResult(phases, t0, cpuAtStart);
}

/** What a client run reports, at its end: `t0` and `cpuAtStart` taken when the move began. */
function clientResult(phases: Record<string, number>, t0: number, cpuAtStart: number): ClientResult {
  const cpu = cpuSeconds();
  return {
    phases,
    total: (performance.now() - t0) / 1000,
    peakRssMb: peakRssMb(),
    cpuSeconds: cpu,
    runCpuSeconds: cpu - cpuAtStart,
  };
}

function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

function runClient(job: ClientJob): Promise<ClientResult> {
  return runClientChild<ClientResult>(import.meta.filename, ['--client', JSON.stringify(job)], job.side);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      records: { type: 'string', default: '20000' },
      blobs: { type: 'string', default: '200' },
      'blob-kb': { type: 'string', default: '256' },
      'rss-blobs': { type: 'string', default: '0' },
      'into-portage-only': { type: 'boolean', default: false },
      rounds: { type: 'string', default: '3' },
    },
  });
  const intoPortageOnly = values['into-portage-only'];
  const records = Number(values.records);
  const blobs = Number(values.blobs);
  const blobBytes = Number(values['blob-kb']) * 1024;
  const rssBlobs = Number(values['rss-blobs']);
  const rounds = Math.max(1, Number(values.rounds));
  const medianNote = rounds > 1 ? `; median of ${rounds} rounds` : '';

  const dir = mkdtempSync(join(tmpdir(), 'portage-bench-migrate-'));
  process.env.TMPDIR = dir; // the reference servers write under os.tmpdir() and never clean up
  const { TestPlc } = await import('@atproto/dev-env');
  const plc = await TestPlc.create({ port: await freePort() });
  const servers: ServerHandle[] = [];
  for (let i = 0; i < 3; i++) {
    servers.push(await startServerProcess(plc.url, `did:web:bench-${i}.test`, { ...process.env, TMPDIR: dir }));
  }
  const [a, b, c] = servers as [ServerHandle, ServerHandle, ServerHandle];
  for (let i = 1; i <= 2; i++) {
    const dataDir = join(dir, `portage-${i}`);
    mkdirSync(dataDir);
    servers.push(await startServerProcess(plc.url, `did:web:bench-portage-${i}.test`, process.env, dataDir));
  }
  const [p1, p2] = servers.slice(3) as [ServerHandle, ServerHandle];

  try {
    const password = 'bench-password';
    const fill = (name: string, nRecords: number, nBlobs: number, bytes: number) =>
      fillAccount(a.url, name, password, { records: nRecords, blobs: nBlobs, bytes });

    const label = `${records} records + ${blobs} blobs x ${blobBytes / 1024} KB`;
    /**
     * One client run moving `account` between two servers, after the machine settled; with
     * `backupName`, Portage's engine keeps its backup there. Also counts the two servers' CPU.
     */
    const move = async (
      side: ClientJob['side'],
      account: string,
      from: ServerHandle,
      to: ServerHandle,
      backupName?: string,
    ): Promise<MeasuredMove> => {
      await settle();
      const { result, cpuSeconds } = await measureCpu([from.pid, to.pid], () =>
        runClient({
          side,
          did: account,
          fromPds: from.url,
          to: to.url,
          plcUrl: plc.url,
          password,
          tokenUrl: from.tokenUrl,
          backupDir: backupName && !process.env.BENCH_NO_BACKUP ? join(dir, backupName) : undefined,
        }),
      );
      return { ...result, serverCpuSeconds: cpuSeconds };
    };
    /** How a run used the machine: both servers' and the client's CPU, and the cores that kept busy. */
    const cpuLine = (run: MeasuredMove) =>
      run.serverCpuSeconds === undefined
        ? `client CPU during the move ${run.runCpuSeconds.toFixed(2)} s`
        : `CPU during the move: servers ${run.serverCpuSeconds.toFixed(2)} s + client ${run.runCpuSeconds.toFixed(2)} s = ` +
          `about ${((run.serverCpuSeconds + run.runCpuSeconds) / run.total).toFixed(2)} cores busy on average`;

    // Each round moves an account of its own (the same size) through every route; each figure is
    // the median of the rounds, for both sides alike (single runs on a shared machine are noisy).
    const ref: MeasuredMove[] = [];
    const ours: MeasuredMove[] = [];
    const intoPortage: Record<string, MeasuredMove[]> = { 'reference -> Portage': [], 'Portage -> Portage': [] };
    for (let round = 0; round < rounds; round++) {
      process.stderr.write(`bench: round ${round + 1} of ${rounds}\n`);
      const did = await fill(`bench${round}`, records, blobs, blobBytes);
      // The same account moves on into Portage's PDS, then between two Portage PDSes.
      let into: [string, ServerHandle, ServerHandle][] = [
        ['reference -> Portage', a, p1],
        ['Portage -> Portage', p1, p2],
      ];
      if (!intoPortageOnly) {
        process.stderr.write('bench: reference-style flow A -> B...\n');
        ref.push(await move('reference', did, a, b));
        process.stderr.write(
          `bench: reference phases ${JSON.stringify(ref.at(-1)!.phases)}, ${cpuLine(ref.at(-1)!)}\n`,
        );
        process.stderr.write('bench: portage B -> C...\n');
        ours.push(await move('portage', did, b, c, `backup-${round}`));
        process.stderr.write(
          `bench: portage phases ${JSON.stringify(ours.at(-1)!.phases)}, ${cpuLine(ours.at(-1)!)}\n`,
        );
        into = [
          ['reference -> Portage', c, p1],
          ['Portage -> Portage', p1, p2],
        ];
      }
      for (const [route, from, to] of into) {
        const run = await move('portage', did, from, to, `backup-${round}-${to === p1 ? 'p1' : 'p2'}`);
        intoPortage[route]!.push(run);
        process.stderr.write(
          `bench: portage ${route}: ${run.total.toFixed(3)} s, ${cpuLine(run)}, peak RSS ${Math.round(run.peakRssMb)} MB, phases ${JSON.stringify(run.phases)}\n`,
        );
      }
    }
    if (intoPortageOnly) return;

    const of = (runs: MeasuredMove[], figure: (run: MeasuredMove) => number | undefined) => {
      const values = runs.map(figure);
      return values.includes(undefined) ? undefined : median(values as number[]);
    };
    const rows: [string, 'MB' | 's', (run: MeasuredMove) => number | undefined][] = [
      [`repo phase seconds (${label})`, 's', (run) => run.phases.repo],
      [`blob phase seconds (${label})`, 's', (run) => run.phases.blobs],
      [
        `total seconds, login to old deactivated (${label}; portage includes verification and local backup)`,
        's',
        (run) => run.total,
      ],
      [`client peak RSS (${label})`, 'MB', (run) => run.peakRssMb],
      [`client CPU seconds, user + system, start-up included (${label})`, 's', (run) => run.cpuSeconds],
      [
        `both servers' CPU seconds during the move, user + system (${label}; reference PDSes on both sides)`,
        's',
        (run) => run.serverCpuSeconds,
      ],
    ];
    for (const [metric, unit, figure] of rows) {
      const portage = of(ours, figure);
      const reference = of(ref, figure);
      if (portage === undefined || reference === undefined) continue;
      report({ bench: 'migrate', metric: `${metric}${medianNote}`, unit, better: 'lower', portage, reference });
    }
    for (const [route, runs] of Object.entries(intoPortage)) {
      report({
        bench: 'migrate',
        metric: `total seconds, ${route} PDS (${label}; portage = our engine into Portage's PDS with verification and local backup, reference = reference-style flow into the reference PDS)${medianNote}`,
        unit: 's',
        better: 'lower',
        portage: of(runs, (run) => run.total)!,
        reference: of(ref, (run) => run.total)!,
      });
      process.stderr.write(
        `bench: ${route} totals ${runs.map((run) => run.total.toFixed(3)).join(', ')} s; reference-style flow ${ref.map((run) => run.total.toFixed(3)).join(', ')} s\n`,
      );
    }

    if (rssBlobs > 0) {
      const big = await fill('bigblobs', 10, rssBlobs, 5 * 1024 * 1024);
      const res = await move('portage', big, a, c);
      report({
        bench: 'migrate',
        metric: `client peak RSS moving ${rssBlobs} blobs of 5 MB (${(rssBlobs * 5) / 1024} GB)`,
        unit: 'MB',
        better: 'lower',
        portage: res.peakRssMb,
        reference: null,
      });
    }
    process.stderr.write(`bench: wrote ${writeResults('migrate')}\n`);
  } finally {
    for (const server of servers) await server.stop().catch(() => {});
    await plc.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}
