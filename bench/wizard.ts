/**
 * `npm run bench -- wizard`: the migrate benchmark's move (an account with 20,000 records and 200
 * blobs of 256 KB, from a reference PDS into Portage) made through the browser wizard that
 * Portage serves at /migrate, beside the same move made by `portage migrate`, same run.
 *
 * One reference PDS and one Portage PDS, each in a process of its own, on a shared PLC. Each round
 * fills two accounts of the same size on the reference; the CLI moves one (a first run that stops
 * for the emailed PLC code, a second with --plc-token, as a person runs it), Debian's Chromium
 * moves the other through the wizard's steps, the code typed in when the identity step asks.
 * Both keep their local backup (the CLI on disk, the page in the browser's storage). Times run
 * from the start (the CLI's launch; the page's first Continue) to the old account deactivated.
 * Each side's clock starts once the machine is quiet: both servers done with the setup's work,
 * and for the page, the browser done starting up and loading it (a person starts on a loaded page).
 * The page's JS heap is sampled through the debugging protocol during the move. Each side's
 * seconds per step (from its events: the CLI's --json lines, the page's user timing marks) go
 * to stderr beside the totals, to show where the difference lies.
 *
 * The browser is not driven by Playwright, as the page tests are: Playwright records every
 * request's body through the debugging protocol's Network domain, a cost no person's browser pays
 * and one that grows with each uploaded blob. A small client of that protocol
 * (lib/plain-chromium.ts) fills in and clicks through the page instead, with the Network domain
 * left off.
 *
 * The figures put the browser in the `portage` column and the CLI in the `reference` column.
 * Options: --records 20000 --blobs 200 --blob-kb 256 --rounds 3
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { freePort } from './lib/child-server.ts';
import { cpuOf, descendantCpuSeconds, settle } from './lib/machine.ts';
import { fetchToken, fillAccount, type ServerHandle, startServerProcess } from './lib/migration-servers.ts';
import { PlainChromium } from './lib/plain-chromium.ts';
import { median, report, writeResults } from './lib/report.ts';

const PORTAGE_CLI = join(import.meta.dirname, '..', 'packages', 'cli', 'bin', 'portage.js');
const PASSWORD = 'bench-password';
/** A move's steps are minutes at the benchmark's size: no single screen may take longer. */
const STEP_TIMEOUT_MS = 30 * 60_000;

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '20000' },
    blobs: { type: 'string', default: '200' },
    'blob-kb': { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
  },
});
const size = { records: Number(values.records), blobs: Number(values.blobs), bytes: Number(values['blob-kb']) * 1024 };
const rounds = Math.max(1, Number(values.rounds));
const label = `${size.records} records + ${size.blobs} blobs x ${size.bytes / 1024} KB`;

const dir = mkdtempSync(join(tmpdir(), 'portage-bench-wizard-'));
process.env.TMPDIR = dir; // the reference servers write under os.tmpdir() and never clean up
const { TestPlc } = await import('@atproto/dev-env');
const plc = await TestPlc.create({ port: await freePort() });
const servers: ServerHandle[] = [];
try {
  const reference = await startServerProcess(plc.url, 'did:web:bench-reference.test', { ...process.env, TMPDIR: dir });
  servers.push(reference);
  mkdirSync(join(dir, 'portage'));
  const portage = await startServerProcess(plc.url, 'did:web:bench-portage.test', process.env, join(dir, 'portage'));
  servers.push(portage);

  const cli: number[] = [];
  const page: { seconds: number; heapMb: number; steps: StepSeconds; cpuSeconds: number | undefined }[] = [];
  for (let round = 0; round < rounds; round++) {
    process.stderr.write(`bench: round ${round + 1} of ${rounds}\n`);
    const forCli = await fillAccount(reference.url, `cli${round}`, PASSWORD, size);
    const forPage = await fillAccount(reference.url, `web${round}`, PASSWORD, size);
    // Alternate who goes first, so neither always meets a fresher server.
    const runs = [
      async () => {
        await settle(cpuOf([reference.pid, portage.pid]));
        const moved = await moveWithCli(forCli, reference, portage, join(dir, `cli-${round}`));
        cli.push(moved.seconds);
        process.stderr.write(`bench: CLI ${moved.seconds.toFixed(2)} s (${describeSteps(moved.steps)})\n`);
      },
      async () => {
        page.push(await moveInBrowser(forPage, `web${round}`, reference, portage));
        const last = page.at(-1)!;
        process.stderr.write(
          `bench: browser ${last.seconds.toFixed(2)} s, JS heap peak ${last.heapMb.toFixed(0)} MB, Chromium CPU ${last.cpuSeconds?.toFixed(2) ?? '?'} s (${describeSteps(last.steps)})\n`,
        );
      },
    ];
    for (const run of round % 2 ? runs.reverse() : runs) await run();
  }
  const note = rounds > 1 ? `; median of ${rounds} rounds` : '';
  report({
    bench: 'wizard',
    metric: `total seconds, reference PDS -> Portage (${label}): the browser wizard (portage column) against portage migrate (reference column)${note}`,
    unit: 's',
    better: 'lower',
    portage: median(page.map((p) => p.seconds)),
    reference: median(cli),
  });
  report({
    bench: 'wizard',
    metric: `the page's peak JS heap during the move (${label})${note}`,
    unit: 'MB',
    better: 'lower',
    portage: median(page.map((p) => p.heapMb)),
    reference: null,
  });
  process.stderr.write(`bench: wrote ${writeResults('wizard')}\n`);
} finally {
  for (const server of servers) await server.stop().catch(() => {});
  await plc.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}

/** Seconds per step, from when it started to when it ended. */
type StepSeconds = Map<string, number>;

function describeSteps(steps: StepSeconds): string {
  return ['repo', 'blobs', 'backup']
    .filter((step) => steps.has(step))
    .map((step) => `${step} ${steps.get(step)!.toFixed(2)} s`)
    .join(', ');
}

/** `portage migrate` as a person runs it: until it asks for the emailed code, then with it. */
async function moveWithCli(
  did: string,
  from: ServerHandle,
  to: ServerHandle,
  work: string,
): Promise<{ seconds: number; steps: StepSeconds }> {
  const args = [
    'migrate',
    '--from',
    did,
    '--to',
    to.url,
    '--plc-url',
    plc.url,
    '--state-dir',
    join(work, 'state'),
    '--backup-dir',
    join(work, 'backup'),
    '--yes',
    '--json',
  ];
  const started = performance.now();
  const steps: StepSeconds = new Map();
  const first = await runCli(args, steps);
  if (first !== 3) throw new Error(`portage migrate stopped with ${first} before asking for the PLC code`);
  const second = await runCli([...args, '--plc-token', await fetchToken(from.tokenUrl, did)], steps);
  if (second !== 0) throw new Error(`portage migrate ended with ${second}`);
  return { seconds: (performance.now() - started) / 1000, steps };
}

/** Runs the CLI; each step it reports ended adds its seconds to `steps`. */
function runCli(args: string[], steps: StepSeconds): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PORTAGE_CLI, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, PORTAGE_OLD_PASSWORD: PASSWORD },
    });
    const startedAt = new Map<string, number>();
    createInterface({ input: child.stdout }).on('line', (line) => {
      let event: { type?: string; step?: string };
      try {
        event = JSON.parse(line) as typeof event;
      } catch {
        return;
      }
      if (!event.step) return;
      if (event.type === 'step-started') startedAt.set(event.step, performance.now());
      const from = startedAt.get(event.step);
      if (event.type === 'step-done' && from !== undefined) {
        steps.set(event.step, (steps.get(event.step) ?? 0) + (performance.now() - from) / 1000);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
}

/** The wizard's steps in Chromium, with its JS heap sampled until the done screen. */
async function moveInBrowser(
  did: string,
  name: string,
  from: ServerHandle,
  to: ServerHandle,
): Promise<{ seconds: number; heapMb: number; steps: StepSeconds; cpuSeconds: number | undefined }> {
  // A fresh browser and profile each round, so nothing stored by an earlier move is there.
  const tab = await PlainChromium.launch(390, 844);
  try {
    await tab.goto(`${to.url}/migrate`);
    await tab.send('Performance.enable');
    let heapPeak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { metrics } = await tab.send<{ metrics: { name: string; value: number }[] }>('Performance.getMetrics');
        const used = metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? 0;
        heapPeak = Math.max(heapPeak, used);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();

    await tab.heading('', STEP_TIMEOUT_MS);
    // The person starts on a loaded page: the browser's start-up and the servers' setup work are
    // over before the clock starts, as they are before the CLI's run.
    const servers = cpuOf([from.pid, to.pid]);
    await settle(() => {
      const [a, b] = [servers(), descendantCpuSeconds(/chrom/i)];
      return a === undefined || b === undefined ? undefined : a + b;
    });
    const started = performance.now();
    const cpuBefore = descendantCpuSeconds(/chrom/i);
    await tab.fill('Handle or DID', did, STEP_TIMEOUT_MS);
    await tab.click('Continue', STEP_TIMEOUT_MS);
    await tab.fill('Password', PASSWORD, STEP_TIMEOUT_MS);
    await tab.click('Continue', STEP_TIMEOUT_MS);
    await tab.heading('Your new account', STEP_TIMEOUT_MS);
    await tab.fill('New handle', `${name}.test`, STEP_TIMEOUT_MS);
    await tab.fill('Email', `${name}@example.com`, STEP_TIMEOUT_MS);
    await tab.fill('New password', PASSWORD, STEP_TIMEOUT_MS);
    await tab.click('Start transfer', STEP_TIMEOUT_MS);
    await tab.heading('Everything arrived', STEP_TIMEOUT_MS);
    await tab.click('Continue', STEP_TIMEOUT_MS);
    await tab.heading('Point your identity at the new server', STEP_TIMEOUT_MS);
    let code = '';
    while (!code) {
      code = await fetchToken(from.tokenUrl, did);
      if (!code) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await tab.fill('Confirmation code', code, STEP_TIMEOUT_MS);
    await tab.click('Confirm', STEP_TIMEOUT_MS);
    await tab.heading('Done', STEP_TIMEOUT_MS);
    const seconds = (performance.now() - started) / 1000;
    const cpuAfter = descendantCpuSeconds(/chrom/i);
    const cpuSeconds = cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore;
    sampling = false;
    await sampler;
    const marks = await tab.evaluate<{ name: string; startTime: number }[]>(
      `performance.getEntriesByType('mark').map(({ name, startTime }) => ({ name, startTime }))`,
    );
    const steps: StepSeconds = new Map();
    const startedAt = new Map<string, number>();
    for (const { name, startTime } of marks) {
      const [, step, edge] = /^portage:([^:]+):(start|end)$/.exec(name) ?? [];
      if (!step) continue;
      if (edge === 'start') startedAt.set(step, startTime);
      else if (startedAt.has(step)) {
        steps.set(step, (steps.get(step) ?? 0) + (startTime - startedAt.get(step)!) / 1000);
      }
    }
    return { seconds, heapMb: heapPeak / 1024 / 1024, steps, cpuSeconds };
  } finally {
    await tab.close();
  }
}
