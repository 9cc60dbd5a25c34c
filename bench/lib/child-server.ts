/**
 * Benchmarks run each server in a process of its own (so its CPU and peak RSS are its own): the
 * benchmark file starts itself again with server arguments, the child prints one line
 * `READY <payload>` once it serves, and runs until SIGTERM.
 */
import { spawn } from 'node:child_process';

import { PORTAGE_NODE_FLAGS } from '../../packages/cli/src/node-flags.ts';
import { freePort } from '../../test/support/reference-peers.ts';

export { freePort };

export interface ChildServer {
  /** What the child printed after `READY `. */
  ready: string;
  pid: number;
  stop(): Promise<void>;
}

/** In the child: tells the parent it serves, and what it needs to know (URLs, as text or JSON). */
export function announceReady(payload: string): void {
  process.stdout.write(`READY ${payload}\n`);
}

/**
 * Starts `script` with `args` in a new Node process and waits for its READY line. `nodeArgs` go
 * before the script (e.g. --cpu-prof); the child's stderr is shown unless `quiet`.
 */
export function startChildServer(
  script: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; nodeArgs?: string[]; quiet?: boolean; label: string },
): Promise<ChildServer> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...args], {
      stdio: ['ignore', 'pipe', opts.quiet ? 'ignore' : 'inherit'],
      env: opts.env ?? process.env,
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('READY '));
      if (!line) return;
      child.stdout.removeAllListeners('data');
      child.removeAllListeners('close');
      resolve({
        ready: line.slice('READY '.length).trim(),
        pid: child.pid!,
        stop: () =>
          new Promise<void>((r) => {
            if (child.exitCode !== null) return r();
            child.once('close', () => r());
            child.kill('SIGTERM');
          }),
      });
    });
    child.on('error', reject);
    child.on('close', (code) => reject(new Error(`${opts.label} exited early (${code})`)));
  });
}

/**
 * In a child: a Portage PDS on the shared PLC with the benchmarks' settings (a free port, `.test`
 * handles, no invites), plus any `env` overrides. Imported lazily so the parent never loads it.
 */
export async function startBenchPortage(opts: {
  plcUrl: string;
  dataDir: string;
  serviceDid?: string;
  env?: Record<string, string>;
}) {
  const { loadConfig, startPds } = await import('../../packages/pds/src/index.ts');
  const config = loadConfig({
    PDS_HOSTNAME: 'localhost',
    PDS_PORT: String(await freePort()),
    PDS_DATA_DIRECTORY: opts.dataDir,
    PDS_SERVICE_DID: opts.serviceDid ?? 'did:web:portage.test',
    PDS_SERVICE_HANDLE_DOMAINS: '.test',
    PDS_INVITE_REQUIRED: 'false',
    PDS_DEV_MODE: 'true',
    PDS_DID_PLC_URL: opts.plcUrl,
    LOG_LEVEL: 'silent',
    ...opts.env,
  });
  return startPds(config, { host: '127.0.0.1' });
}

/** In a child: the reference PDS (@atproto/dev-env) on the shared PLC, with extra options. */
export async function startBenchReference(opts: { plcUrl: string; serviceDid?: string; [option: string]: unknown }) {
  const { TestPds } = await import('@atproto/dev-env');
  const { plcUrl, serviceDid, ...rest } = opts;
  return TestPds.create({
    didPlcUrl: plcUrl,
    port: await freePort(),
    serviceDid: serviceDid ?? 'did:web:reference.test',
    ...rest,
  } as never);
}

/**
 * Node arguments for a benchmark child. Portage's side gets the flags `portage` and `npm start`
 * use, so the benchmarks measure Portage as it runs for its users; the reference's side keeps
 * Node's defaults, as the reference PDS runs. `profile` names the environment variable
 * (BENCH_SERVER_PROF, BENCH_CLIENT_PROF) whose folder receives a CPU profile of the child, when set.
 */
export function benchNodeArgs(
  side: 'portage' | 'reference',
  profile?: 'BENCH_SERVER_PROF' | 'BENCH_CLIENT_PROF',
): string[] {
  const dir = profile && process.env[profile];
  return [...(side === 'portage' ? PORTAGE_NODE_FLAGS : []), ...(dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [])];
}

/**
 * Runs one benchmark client: `script` with `args` in a new Node process (`side`'s flags, GC
 * exposed, BENCH_CLIENT_PROF honoured) that prints `RESULT <json>` at its end; resolves to that.
 */
export function runClientChild<T>(script: string, args: string[], side: 'portage' | 'reference'): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...benchNodeArgs(side, 'BENCH_CLIENT_PROF'), '--expose-gc', script, ...args],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) reject(new Error(`${side} client failed (exit ${code}): ${out.slice(-2000)}`));
      else resolve(JSON.parse(line.slice(7)) as T);
    });
  });
}

/** In a child: runs `close` and exits on SIGTERM (how the parent stops a child server). */
export function closeOnSigterm(close: () => Promise<unknown>): void {
  process.on('SIGTERM', () => {
    void close().finally(() => process.exit(0));
  });
}
