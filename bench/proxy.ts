/**
 * `npm run bench -- proxy`: forwarding to the AppView. One reference AppView (@atproto/bsky
 * through @atproto/dev-env's TestBsky, on a throwaway PostgreSQL cluster) indexes the firehoses of
 * both Portage and the reference PDS (TestPds, its AppView configured to the same one), each in a
 * process of its own; on each side a viewer follows an author, both post, the viewer likes and
 * replies. Then getTimeline (50 items) and getProfile are timed with 16 requests in flight for
 * each side's viewer three ways: straight to the AppView (with a service JWT the viewer's PDS
 * issued through getServiceAuth, which the AppView takes from any caller), through Portage, and
 * through the reference, the four ways taken in turn request by request among the 16 in flight,
 * so each meets the AppView in the same state (on a shared machine its speed drifts by far more
 * than a PDS adds). The figures: p50 and p99 latency of each way; what each PDS adds over the
 * AppView alone, request by request (each request's time outside the AppView, which the AppView's
 * process measures, less that of the direct samples of both viewers pooled: the AppView does the
 * same work for either); the same from whole latencies, for comparison; the AppView's own time
 * for each PDS's calls; each PDS's own CPU time per forwarded request (what it costs whatever
 * the AppView's speed); and the servers' RSS before and after the timed runs.
 * Options: --requests 500 (timed requests per route and way) --rounds 5 --posts 40
 *          --in-flight 16 (in all, the four ways together)
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startPostgres } from '../test/support/postgres.ts';
import { until } from '../test/support/until.ts';
import {
  announceReady,
  benchNodeArgs,
  closeOnSigterm,
  freePort,
  startBenchPortage,
  startBenchReference,
  startChildServer,
} from './lib/child-server.ts';
import { measureCpu, settle } from './lib/machine.ts';
import { report, writeResults } from './lib/report.ts';

type Side = 'portage' | 'reference';
const SIDES: Side[] = ['portage', 'reference'];

interface AppViewInfo {
  plcUrl: string;
  url: string;
  did: string;
  /** GET: the AppView's own time for each tagged request since the last GET (and forgets them). */
  timingsUrl: string;
}

/**
 * The header each timed request carries, with an id of its own. Both PDSes pass x-atproto-*
 * headers on to the AppView (the reference's rule), so the AppView sees the same id whichever
 * way the request came, and can say how long it spent on it.
 */
const BENCH_ID_HEADER = 'x-atproto-bench-id';

/**
 * Times, in the AppView's process, each tagged request from its arrival (its headers read) to
 * the moment the AppView hands its whole answer over (res.end). What is left of a request's
 * latency is spent outside the AppView: in the client, the PDS (when it goes through one) and
 * on the loopback, whatever the AppView's own speed meanwhile.
 */
function timeTaggedRequests(server: import('node:http').Server): Map<string, number> {
  const timings = new Map<string, number>();
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const id = req.headers[BENCH_ID_HEADER];
    if (typeof id !== 'string') return;
    const arrived = performance.now();
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    res.end = ((...args: unknown[]) => {
      timings.set(id, performance.now() - arrived);
      return end(...args);
    }) as ServerResponse['end'];
  });
  return timings;
}

/**
 * In a child: the PLC directory, bsync and the AppView, subscribed to both PDSes' firehoses
 * (TestBsky subscribes to one; a second RepoSubscription on the same database takes the other).
 */
async function serveAppView(opts: { pgUrl: string; firehoses: string[] }): Promise<void> {
  const { TestPlc, TestBsky, TestBsync, RepoSubscription } = await import('@atproto/dev-env');
  const plc = await TestPlc.create({ port: await freePort() });
  const bsyncApiKey = 'bsync-api-key';
  const bsync = await TestBsync.create({
    port: await freePort(),
    apiKeys: [bsyncApiKey],
    dbUrl: opts.pgUrl,
    dbSchema: 'bsync',
  } as never);
  const bsky = await TestBsky.create({
    port: await freePort(),
    plcUrl: plc.url,
    repoProvider: opts.firehoses[0],
    dbPostgresUrl: opts.pgUrl,
    dbPostgresSchema: 'appview',
    bsyncUrl: bsync.url,
    bsyncApiKey,
  } as never);
  const more = opts.firehoses
    .slice(1)
    .map((service) => new RepoSubscription({ service, db: bsky.db, idResolver: bsky.dataplane.idResolver }));
  for (const sub of more) void sub.start();
  const timings = timeTaggedRequests((bsky.server as unknown as { server: import('node:http').Server }).server);
  const timingsServer = createServer((_req, res) => {
    const body = JSON.stringify(Object.fromEntries(timings));
    timings.clear();
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => timingsServer.listen(0, '127.0.0.1', resolve));
  const timingsPort = (timingsServer.address() as import('node:net').AddressInfo).port;
  const info: AppViewInfo = {
    plcUrl: plc.url,
    url: `http://127.0.0.1:${bsky.port}`,
    did: bsky.serverDid,
    timingsUrl: `http://127.0.0.1:${timingsPort}/`,
  };
  announceReady(JSON.stringify(info));
  closeOnSigterm(async () => {
    timingsServer.close();
    for (const sub of more) await sub.destroy();
    await bsky.close();
    await bsync.close();
    await plc.close();
  });
}

/** In a child: one PDS on `port`, forwarding to the AppView. */
async function servePds(side: Side, opts: { appView: AppViewInfo; port: number; dataDir: string }): Promise<void> {
  const { appView, port } = opts;
  if (side === 'portage') {
    const pds = await startBenchPortage({
      plcUrl: appView.plcUrl,
      dataDir: opts.dataDir,
      env: {
        PDS_PORT: String(port),
        PDS_BSKY_APP_VIEW_URL: appView.url,
        PDS_BSKY_APP_VIEW_DID: appView.did,
      },
    });
    announceReady(pds.localUrl);
    closeOnSigterm(() => pds.close());
  } else {
    const pds = await startBenchReference({
      plcUrl: appView.plcUrl,
      port,
      bskyAppViewUrl: appView.url,
      bskyAppViewDid: appView.did,
    });
    announceReady(`http://127.0.0.1:${port}`);
    closeOnSigterm(() => pds.close());
  }
}

/** The client: node:http with keep-alive sockets, the same for every way of asking. */
const keepAlive = new Agent({ keepAlive: true, maxSockets: 64 });

function call(
  url: string,
  init: { method?: string; body?: unknown; token?: string; benchId?: string } = {},
): Promise<{ status: number; body: Buffer }> {
  const headers: Record<string, string> = {};
  if (init.benchId) headers[BENCH_ID_HEADER] = init.benchId;
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  let body: string | undefined;
  if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: init.method ?? (body ? 'POST' : 'GET'), headers, agent: keepAlive },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const out = Buffer.concat(chunks);
          if (status >= 200 && status < 300) resolve({ status, body: out });
          else reject(new Error(`${url.split('?')[0]} -> ${status} ${out.toString('utf8').slice(0, 300)}`));
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function callJson<T>(url: string, init: { body?: unknown; token?: string } = {}): Promise<T> {
  return JSON.parse((await call(url, init)).body.toString('utf8')) as T;
}

interface Account {
  did: string;
  token: string;
}

interface SideSetup {
  pdsUrl: string;
  pid: number;
  viewer: Account;
  author: Account;
  /** Service JWTs for the AppView, per method, for the direct calls. */
  direct: Record<string, string>;
}

async function createAccount(pdsUrl: string, handle: string): Promise<Account> {
  const out = await callJson<{ did: string; accessJwt: string }>(`${pdsUrl}/xrpc/com.atproto.server.createAccount`, {
    body: { handle, email: `${handle}@example.com`, password: 'bench-password' },
  });
  return { did: out.did, token: out.accessJwt };
}

/** Profiles, posts, follows both ways and likes, in a few applyWrites. */
async function seed(pdsUrl: string, prefix: string, posts: number): Promise<{ viewer: Account; author: Account }> {
  const viewer = await createAccount(pdsUrl, `${prefix}-viewer.test`);
  const author = await createAccount(pdsUrl, `${prefix}-author.test`);
  const now = Date.now();
  const at = (i: number) => new Date(now - (posts - i) * 60_000).toISOString();
  const write = (who: Account, writes: unknown[]) =>
    callJson<{ results: { uri: string; cid: string }[] }>(`${pdsUrl}/xrpc/com.atproto.repo.applyWrites`, {
      token: who.token,
      body: { repo: who.did, writes },
    });
  const create = (collection: string, value: Record<string, unknown>, rkey?: string) => ({
    $type: 'com.atproto.repo.applyWrites#create',
    collection,
    ...(rkey ? { rkey } : {}),
    value: { $type: collection, ...value },
  });
  const profile = (name: string) =>
    create('app.bsky.actor.profile', { displayName: name, description: `${name}, for the benchmark` }, 'self');
  const authored = await write(author, [
    profile(`${prefix} author`),
    create('app.bsky.graph.follow', { subject: viewer.did, createdAt: at(0) }),
    ...Array.from({ length: posts }, (_, i) =>
      create('app.bsky.feed.post', { text: `post ${i} by the author: ${'lorem ipsum '.repeat(8)}`, createdAt: at(i) }),
    ),
  ]);
  const authorPosts = authored.results.slice(2).map(({ uri, cid }) => ({ uri, cid }));
  await write(viewer, [
    profile(`${prefix} viewer`),
    create('app.bsky.graph.follow', { subject: author.did, createdAt: at(0) }),
    ...Array.from({ length: Math.ceil(posts / 4) }, (_, i) =>
      create('app.bsky.feed.post', { text: `post ${i} by the viewer`, createdAt: at(i * 4) }),
    ),
    // Every other post of the author liked, and one reply, so hydration has viewer state to fill.
    ...authorPosts
      .filter((_, i) => i % 2 === 0)
      .map((p) => create('app.bsky.feed.like', { subject: { uri: p.uri, cid: p.cid }, createdAt: at(posts) })),
    create('app.bsky.feed.post', {
      text: 'a reply',
      reply: { root: authorPosts[0], parent: authorPosts[0] },
      createdAt: at(posts),
    }),
  ]);
  return { viewer, author };
}

interface Route {
  name: string;
  nsid: string;
  query: (s: SideSetup) => string;
}

const ROUTES: Route[] = [
  { name: 'getTimeline', nsid: 'app.bsky.feed.getTimeline', query: () => 'limit=50' },
  {
    name: 'getProfile',
    nsid: 'app.bsky.actor.getProfile',
    query: (s) => `actor=${encodeURIComponent(s.author.did)}`,
  },
];

type Way = 'direct' | 'through';

/** One timed request: its id (BENCH_ID_HEADER) and its latency as the client saw it. */
interface Sample {
  id: string;
  ms: number;
}

let nextBenchId = 0;

/**
 * Runs `count` requests of each way with `inFlight` in flight in all, the ways taken in turn
 * request by request, so every way meets the AppView in the same state at the same moments
 * (on a shared machine its speed drifts by more than a PDS adds); returns each way's samples.
 * The first request of every worker is not timed: those all start at the same instant, the
 * AppView (idle a moment before) takes them on together and is slow with the burst, and the ones
 * that reached it last, through a PDS a few ms behind the direct ones, finished last, seconds
 * later: a queue the benchmark made. With four of each way's samples in every round's burst,
 * more than p99's share, the burst set the whole-latency p99s.
 */
async function load(count: number, sends: ((benchId: string) => Promise<unknown>)[], inFlight: number) {
  const samples = sends.map((): Sample[] => []);
  // Whole turns of the ways, so every way keeps `count` timed requests.
  const untimed = Math.ceil(inFlight / sends.length) * sends.length;
  const total = count * sends.length + untimed;
  let started = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (started < total) {
        const timed = started >= untimed;
        const way = started++ % sends.length;
        const id = String(nextBenchId++);
        const t = performance.now();
        await sends[way]!(id);
        if (timed) samples[way]!.push({ id, ms: performance.now() - t });
      }
    }),
  );
  return samples;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Current resident set size of a process, in MB (Linux /proc). */
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      requests: { type: 'string', default: '500' },
      rounds: { type: 'string', default: '5' },
      posts: { type: 'string', default: '40' },
      'in-flight': { type: 'string', default: '16' },
    },
  });
  const requests = Number(values.requests);
  const rounds = Number(values.rounds);
  const posts = Number(values.posts);
  const inFlight = Number(values['in-flight']);
  const dir = mkdtempSync(join(tmpdir(), 'portage-bench-proxy-'));
  const env = { ...process.env, TMPDIR: dir }; // the reference writes under os.tmpdir() and never cleans up
  const stops: (() => Promise<void>)[] = [];
  const t0 = performance.now();
  const step = (what: string) =>
    process.stderr.write(`bench proxy: ${what} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
  const samples = new Map<string, number[]>();
  /** CPU seconds each PDS used while its forwarded requests ran, per route. */
  const pdsCpu = new Map<string, number>();
  const rss = {} as Record<Side, { before: number; after: number }>;
  const sides = {} as Record<Side, SideSetup>;
  try {
    const pg = await startPostgres();
    stops.push(() => pg.stop());
    const ports = { portage: await freePort(), reference: await freePort() };
    const appViewChild = await startChildServer(
      import.meta.filename,
      ['--appview', JSON.stringify({ pgUrl: pg.url, firehoses: SIDES.map((s) => `ws://127.0.0.1:${ports[s]}`) })],
      // (Its PostgreSQL client's deprecation warnings are not the benchmark's business.)
      { env: { ...env, NODE_NO_WARNINGS: '1' }, label: 'AppView' },
    );
    stops.unshift(appViewChild.stop);
    const appView = JSON.parse(appViewChild.ready) as AppViewInfo;
    step('AppView up');
    for (const side of SIDES) {
      const child = await startChildServer(
        import.meta.filename,
        ['--server', side, JSON.stringify({ appView, port: ports[side], dataDir: join(dir, side) })],
        { env, nodeArgs: benchNodeArgs(side, 'BENCH_SERVER_PROF'), label: `${side} PDS` },
      );
      // PDSes stop before the AppView, so its subscriptions end cleanly.
      stops.unshift(child.stop);
      const { viewer, author } = await seed(child.ready, side === 'portage' ? 'p' : 'r', posts);
      const direct: Record<string, string> = {};
      for (const { nsid } of ROUTES) {
        const q = new URLSearchParams({
          aud: appView.did,
          lxm: nsid,
          exp: String(Math.floor(Date.now() / 1000) + 1800),
        });
        direct[nsid] = (
          await callJson<{ token: string }>(`${child.ready}/xrpc/com.atproto.server.getServiceAuth?${q}`, {
            token: viewer.token,
          })
        ).token;
      }
      sides[side] = { pdsUrl: child.ready, pid: child.pid, viewer, author, direct };
    }
    step('both PDSes up and seeded');
    const expected = Math.min(50, posts + Math.ceil(posts / 4));
    for (const side of SIDES) {
      const s = sides[side];
      await until(
        `the AppView to index ${side}'s accounts`,
        async () => {
          const timeline = await callJson<{ feed: unknown[] }>(
            `${appView.url}/xrpc/app.bsky.feed.getTimeline?limit=100`,
            { token: s.direct['app.bsky.feed.getTimeline'] },
          );
          const profile = await callJson<{ postsCount?: number; viewer?: { following?: string } }>(
            `${appView.url}/xrpc/app.bsky.actor.getProfile?actor=${encodeURIComponent(s.author.did)}`,
            { token: s.direct['app.bsky.actor.getProfile'] },
          );
          return timeline.feed.length >= expected && profile.postsCount === posts && profile.viewer?.following
            ? true
            : undefined;
        },
        { timeoutMs: 120_000, everyMs: 250 },
      );
    }
    step('the AppView indexed both sides');

    const url = (side: Side, way: Way, route: Route) =>
      `${way === 'direct' ? appView.url : sides[side].pdsUrl}/xrpc/${route.nsid}?${route.query(sides[side])}`;
    const send = (side: Side, way: Way, route: Route) => {
      const target = url(side, way, route);
      const token = way === 'direct' ? sides[side].direct[route.nsid] : sides[side].viewer.token;
      return (benchId?: string) => call(target, { token, benchId });
    };
    const ways: [Side, Way][] = [
      ['portage', 'direct'],
      ['portage', 'through'],
      ['reference', 'direct'],
      ['reference', 'through'],
    ];
    // Every response checked once: the same answer, whichever way it came.
    for (const route of ROUTES) {
      for (const [side, way] of ways) {
        const body = JSON.parse((await send(side, way, route)()).body.toString('utf8')) as {
          feed?: unknown[];
          did?: string;
        };
        if (route.nsid.endsWith('getTimeline') ? body.feed?.length !== expected : body.did !== sides[side].author.did)
          throw new Error(`${route.name} ${way} for ${side} answered ${JSON.stringify(body).slice(0, 200)}`);
      }
    }
    // Untimed warm-up of every route and way (JIT, connection pools, the AppView's caches).
    const sendsOf = (route: Route) => ways.map(([side, way]) => send(side, way, route));
    for (const route of ROUTES) await load(16, sendsOf(route), inFlight);
    await callJson(appView.timingsUrl); // the warm-up's timings, forgotten
    for (const side of SIDES) rss[side] = { before: rssMb(sides[side].pid), after: 0 };
    step('warmed up');

    const perRound = Math.ceil(requests / rounds);
    for (let round = 0; round < rounds; round++) {
      for (const route of ROUTES) {
        await settle();
        const pids = [appViewChild.pid, process.pid, ...SIDES.map((side) => sides[side].pid)];
        const pdsSeconds: Partial<Record<Side, number>> = {};
        const { result, cpuSeconds, seconds } = await measureCpu(pids, async () => {
          const portage = await measureCpu([sides.portage.pid], async () => {
            const reference = await measureCpu([sides.reference.pid], () => load(perRound, sendsOf(route), inFlight));
            pdsSeconds.reference = reference.cpuSeconds;
            return reference.result;
          });
          pdsSeconds.portage = portage.cpuSeconds;
          return portage.result;
        });
        const appViewMs = await callJson<Record<string, number>>(appView.timingsUrl);
        const p50s: string[] = [];
        for (const [i, [side, way]] of ways.entries()) {
          const key = `${route.name} ${side} ${way}`;
          const latencies = result[i]!.map((s) => s.ms);
          const own = result[i]!.map((s) => {
            const ms = appViewMs[s.id];
            if (ms === undefined) throw new Error(`the AppView did not see request ${s.id} (${key})`);
            return ms;
          });
          const add = (k: string, values: number[]) => samples.set(k, [...(samples.get(k) ?? []), ...values]);
          add(key, latencies);
          add(`${key} appview`, own);
          add(
            `${key} outside`,
            latencies.map((ms, j) => ms - own[j]!),
          );
          p50s.push(`${side} ${way} ${percentile(latencies, 50).toFixed(1)}`);
        }
        for (const side of SIDES) {
          const key = `${route.name} ${side} through`;
          if (pdsSeconds[side] !== undefined) pdsCpu.set(key, (pdsCpu.get(key) ?? 0) + pdsSeconds[side]);
        }
        process.stderr.write(
          `bench proxy: round ${round + 1}/${rounds} ${route.name}: p50 ms ${p50s.join(', ')}` +
            (cpuSeconds === undefined
              ? '\n'
              : `; the AppView, both PDSes and the client kept ${(cpuSeconds / seconds).toFixed(2)} cores busy\n`),
        );
      }
    }
    for (const side of SIDES) rss[side].after = rssMb(sides[side].pid);
  } finally {
    for (const stop of stops) await stop();
    keepAlive.destroy();
    rmSync(dir, { recursive: true, force: true });
  }

  const fig = (metric: string, unit: string, better: 'higher' | 'lower', portage: number, reference: number | null) =>
    report({ bench: 'proxy', metric, unit, better, portage, reference });
  for (const route of ROUTES) {
    const of = (side: Side, way: Way, part = '') => samples.get(`${route.name} ${side} ${way}${part}`)!;
    const pooled = (part = '') => [...of('portage', 'direct', part), ...of('reference', 'direct', part)];
    for (const p of [50, 99]) {
      const at = (side: Side, way: Way, part = '') => percentile(of(side, way, part), p);
      // Both columns of the direct figure are the AppView alone, for each side's viewer.
      fig(
        `${route.name} p${p}, direct to the AppView`,
        'ms',
        'lower',
        at('portage', 'direct'),
        at('reference', 'direct'),
      );
      fig(`${route.name} p${p}, through the PDS`, 'ms', 'lower', at('portage', 'through'), at('reference', 'through'));
      // What a PDS adds: each request's time outside the AppView (its latency less the time the
      // AppView itself spent on it), less that of the direct calls (client and loopback alone).
      // Taken request by request, it does not move with the AppView's speed, which under 16 in
      // flight varies from one request to the next by far more than a PDS adds.
      const outside = percentile(pooled(' outside'), p);
      fig(
        `${route.name} p${p}, added by the PDS`,
        'ms',
        'lower',
        at('portage', 'through', ' outside') - outside,
        at('reference', 'through', ' outside') - outside,
      );
      // The same from the whole latencies: the difference of two percentiles of the AppView's
      // own spread, shown for comparison (at p99 it is mostly the AppView's drift).
      const baseline = percentile(pooled(), p);
      fig(
        `${route.name} p${p}, through less direct, whole latencies`,
        'ms',
        'lower',
        at('portage', 'through') - baseline,
        at('reference', 'through') - baseline,
      );
    }
    // A PDS could also make the AppView's own work longer (by what it asks for): shown here.
    fig(
      `${route.name} p50, the AppView's own time for the PDS's calls`,
      'ms',
      'lower',
      percentile(of('portage', 'through', ' appview'), 50),
      percentile(of('reference', 'through', ' appview'), 50),
    );
    const cpuMs = (side: Side) =>
      ((pdsCpu.get(`${route.name} ${side} through`) ?? 0) * 1000) / of(side, 'through').length;
    fig(`${route.name}, PDS CPU per forwarded request`, 'ms', 'lower', cpuMs('portage'), cpuMs('reference'));
  }
  fig('server RSS before the timed runs', 'MB', 'lower', rss.portage.before, rss.reference.before);
  fig('server RSS after the timed runs', 'MB', 'lower', rss.portage.after, rss.reference.after);
  process.stderr.write(`wrote ${writeResults('proxy')}\n`);
}

// Dispatch last: the constants above must be initialised before main() runs.
const argv = process.argv.slice(2);
if (argv[0] === '--appview') {
  await serveAppView(JSON.parse(argv[1]!) as { pgUrl: string; firehoses: string[] });
} else if (argv[0] === '--server') {
  await servePds(argv[1] as Side, JSON.parse(argv[2]!) as { appView: AppViewInfo; port: number; dataDir: string });
} else {
  await main();
}
