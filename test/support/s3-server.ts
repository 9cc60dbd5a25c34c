/**
 * A throwaway S3-compatible server for tests: moto's standalone server (`moto_server`, Python,
 * on the machine image), which speaks the S3 REST API with multipart uploads, copies and
 * listings as AWS documents them. It keeps objects in its own memory, on a free loopback port;
 * `stop()` ends it (and with it every object); `kill()` and `restart()` play an outage.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './reference-peers.ts';

export interface TestS3Server {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  /** PDS_BLOBSTORE_S3_* settings for a bucket on this server (created on first use by the caller). */
  env(bucket: string): Record<string, string>;
  /** Creates a bucket. */
  createBucket(name: string): Promise<void>;
  /** Kills the server: every request after this fails to connect. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty (an outage that lost what it stored). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

let found: string[] | null | undefined;

/** Why the S3 tests cannot run here (a `skip` reason), or false when they can. */
export function s3ServerMissing(): string | false {
  return findMotoServer() ? false : 'moto_server is not installed (pip install "moto[server]")';
}

/** The command that starts moto's server, or undefined when moto is not installed. */
export function findMotoServer(): string[] | undefined {
  if (found !== undefined) return found ?? undefined;
  found = null;
  // pyenv's shims are on an interactive shell's PATH but not always on a CI runner's.
  const pyenvShim = join(homedir(), '.pyenv', 'shims', 'moto_server');
  for (const candidate of [['moto_server'], [pyenvShim], ['python3', '-m', 'moto.server']]) {
    try {
      execFileSync(candidate[0]!, [...candidate.slice(1), '--help'], { stdio: 'ignore', timeout: 30_000 });
      found = candidate;
      return candidate;
    } catch {
      // try the next
    }
  }
  return undefined;
}

/** Starts moto on `port`; resolves once it answers, with the process. */
async function spawnMoto(command: string[], port: number): Promise<ChildProcess> {
  const child: ChildProcess = spawn(command[0]!, [...command.slice(1), '-H', '127.0.0.1', '-p', String(port)], {
    stdio: 'ignore',
    env: { ...process.env, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' },
  });
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error('moto_server exited at start-up');
    const up = await fetch(`http://127.0.0.1:${port}/`).then(
      (r) => r.status < 500,
      () => false,
    );
    if (up) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('moto_server did not answer within 30 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

export async function startS3Server(): Promise<TestS3Server> {
  const command = findMotoServer();
  if (!command) throw new Error('moto is not installed (pip install "moto[server]")');
  const port = await freePort();
  let child = await spawnMoto(command, port);
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    env: (bucket) => ({
      PDS_BLOBSTORE_S3_BUCKET: bucket,
      PDS_BLOBSTORE_S3_REGION: 'us-east-1',
      PDS_BLOBSTORE_S3_ENDPOINT: endpoint,
      PDS_BLOBSTORE_S3_FORCE_PATH_STYLE: 'true',
      PDS_BLOBSTORE_S3_ACCESS_KEY_ID: 'test',
      PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY: 'test',
    }),
    async createBucket(name) {
      const res = await fetch(`${endpoint}/${name}`, { method: 'PUT' });
      if (!res.ok) throw new Error(`creating bucket ${name} failed: ${res.status} ${await res.text()}`);
    },
    kill: () => stopProcess(child, 'SIGKILL'),
    async restart() {
      await stopProcess(child, 'SIGKILL');
      child = await spawnMoto(command, port);
    },
    stop: () => stopProcess(child, 'SIGTERM'),
  };
}
