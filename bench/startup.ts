/**
 * `npm run bench -- startup`: how long the `portage` command takes to start, as a person at a
 * terminal meets it. Each figure is the median wall time of --runs starts (15) of a fresh process,
 * started the way `npx portage` starts it (the launcher, by the Node npm scripts use):
 *   - `portage --help`, and the same through `npx` (npm's own start-up included);
 *   - `portage migrate --help`;
 *   - `portage migrate`, from its start to its first request (the engine loaded, arguments
 *     checked), which a move pays twice when the emailed code is typed in a second run;
 *   - `portage serve`, from its start until `describeServer` answers, beside the reference PDS
 *     (`@atproto/pds` started by a script of its own) until its `describeServer` answers;
 *   - `node -e 0`: Node's own start, the floor under every other figure.
 * Every run of the launcher uses Node's compile cache, as an installed Portage does; the first,
 * cold-cache start is reported too. Beside wall time, the CPU time of the short commands: wall
 * time stretches when the machine is busy, CPU time much less.
 * Options: --runs 15
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PORTAGE_NODE_FLAGS } from '../packages/cli/src/node-flags.ts';
import { freePort } from './lib/child-server.ts';
import { settle } from './lib/machine.ts';
import { median, report, writeResults } from './lib/report.ts';

const root = join(import.meta.dirname, '..');
const launcher = join(root, 'packages', 'cli', 'bin', 'portage.js');
const compileCache = join(root, 'node_modules', '.cache', 'portage');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const runs = Number(values.runs);
const scratch = mkdtempSync(join(tmpdir(), 'portage-bench-startup-'));

/** CPU milliseconds used so far by this process's children that have ended (cutime + cstime, /proc). */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

/** CPU milliseconds of each of the last timed processes: unlike wall time, not stretched by a busy machine. */
const cpuTimes: number[] = [];

/** Wall milliseconds of one process from spawn to exit (its CPU milliseconds go to cpuTimes). */
function timeProcess(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const cpuBefore = childrenCpuMs();
  const start = performance.now();
  execFileSync(command, args, { stdio: 'ignore', env });
  const wall = performance.now() - start;
  cpuTimes.push(childrenCpuMs() - cpuBefore);
  return wall;
}

/** The median CPU milliseconds of the processes timed since the last call. */
function medianCpu(): number {
  return median(cpuTimes.splice(0));
}

function medianOf(count: number, once: () => number): number {
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(once());
  return median(times);
}

/** Milliseconds from spawning `args` until `ready()` resolves; the process is then killed. */
async function timeUntil(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: (child: ChildProcess) => Promise<void>,
): Promise<number> {
  const start = performance.now();
  const child = spawn(command, args, { env, stdio: 'ignore' });
  try {
    await ready(child);
    return performance.now() - start;
  } finally {
    child.kill('SIGKILL');
    await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)));
  }
}

/** Resolves once `url` answers 200, polling every 5 ms; rejects if the child exits first. */
async function answers(url: string, child: ChildProcess): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: the server exited with ${child.exitCode}`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const portage = (args: string[]) => [...PORTAGE_NODE_FLAGS, launcher, ...args];

async function main(): Promise<void> {
  await settle();
  rmSync(compileCache, { recursive: true, force: true });
  const cold = timeProcess(process.execPath, portage(['--help']));
  report({
    bench: 'startup',
    metric: 'portage --help, first start (cold compile cache)',
    unit: 'ms',
    better: 'lower',
    portage: cold,
    reference: null,
  });
  cpuTimes.length = 0;
  report({
    bench: 'startup',
    metric: 'portage --help',
    unit: 'ms',
    better: 'lower',
    portage: medianOf(runs, () => timeProcess(process.execPath, portage(['--help']))),
    reference: null,
  });
  report({
    bench: 'startup',
    metric: 'portage --help, CPU',
    unit: 'ms',
    better: 'lower',
    portage: medianCpu(),
    reference: null,
  });
  report({
    bench: 'startup',
    metric: 'npx portage --help (npm included)',
    unit: 'ms',
    better: 'lower',
    portage: medianOf(Math.min(runs, 7), () => timeProcess('npx', ['--no-install', 'portage', '--help'])),
    reference: null,
  });
  cpuTimes.length = 0;
  report({
    bench: 'startup',
    metric: 'portage migrate --help',
    unit: 'ms',
    better: 'lower',
    portage: medianOf(runs, () => timeProcess(process.execPath, portage(['migrate', '--help']))),
    reference: null,
  });
  report({
    bench: 'startup',
    metric: 'portage migrate --help, CPU',
    unit: 'ms',
    better: 'lower',
    portage: medianCpu(),
    reference: null,
  });

  // A server that notes the first request a migration sends, and refuses it.
  let firstRequest: (() => void) | undefined;
  const server = createServer((req, res) => {
    firstRequest?.();
    res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"Unavailable"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const target = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const migrateEnv = { ...process.env, PORTAGE_OLD_PASSWORD: 'not-used' };
  const toFirstRequest: number[] = [];
  for (let i = 0; i < runs; i++) {
    const args = portage([
      'migrate',
      ...['--from', 'did:plc:ewvi7nxzyoun6zhxrhs64oiz', '--to', target, '--from-pds', target, '--plc-url', target],
      ...['--state-dir', join(scratch, `state-${i}`), '--no-backup', '--json', '--yes'],
    ]);
    toFirstRequest.push(
      await timeUntil(
        process.execPath,
        args,
        migrateEnv,
        () => new Promise<void>((resolve) => (firstRequest = resolve)),
      ),
    );
  }
  server.close();
  report({
    bench: 'startup',
    metric: 'portage migrate, start to its first request',
    unit: 'ms',
    better: 'lower',
    portage: median(toFirstRequest),
    reference: null,
  });

  const serveTimes: number[] = [];
  const referenceTimes: number[] = [];
  for (let i = 0; i < Math.min(runs, 5); i++) {
    const port = await freePort();
    const env = {
      ...process.env,
      PDS_PORT: String(port),
      PORTAGE_PLC_PORT: String(await freePort()),
      PDS_DATA_DIRECTORY: join(scratch, `serve-${i}`),
      LOG_LEVEL: 'warn',
    };
    const describe = `http://127.0.0.1:${port}/xrpc/com.atproto.server.describeServer`;
    serveTimes.push(await timeUntil(process.execPath, portage(['serve']), env, (child) => answers(describe, child)));
    const refPort = await freePort();
    referenceTimes.push(
      await timeUntil(
        process.execPath,
        [join(import.meta.dirname, 'lib', 'reference-pds-main.ts'), String(refPort), join(scratch, `ref-${i}`)],
        process.env,
        (child) => answers(`http://127.0.0.1:${refPort}/xrpc/com.atproto.server.describeServer`, child),
      ),
    );
  }
  report({
    bench: 'startup',
    metric: 'serve: start until describeServer answers',
    unit: 'ms',
    better: 'lower',
    portage: median(serveTimes),
    reference: median(referenceTimes),
  });
  report({
    bench: 'startup',
    metric: 'node -e 0 (Node itself)',
    unit: 'ms',
    better: 'lower',
    portage: medianOf(runs, () => timeProcess(process.execPath, ['-e', '0'])),
    reference: null,
  });
  report({
    bench: 'startup',
    metric: 'node -e 0, CPU',
    unit: 'ms',
    better: 'lower',
    portage: medianCpu(),
    reference: null,
  });
  writeResults('startup');
}

try {
  await main();
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
