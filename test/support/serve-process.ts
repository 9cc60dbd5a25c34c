/**
 * `portage serve` as a child process, for tests about what a separate server process does
 * (several processes sharing Redis, a server's memory during a large upload). It starts on a
 * free loopback port with the given environment and is ready once /xrpc/_health answers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './reference-peers.ts';

const main = join(import.meta.dirname, '..', '..', 'packages', 'cli', 'bin', 'portage.js');

export interface ServeProcess {
  url: string;
  pid: number;
  /** Everything the process printed so far. */
  output(): string;
  /** The process's resident set size in bytes, read from /proc. */
  rssBytes(): number;
  stop(): Promise<void>;
}

export async function startServeProcess(env: Record<string, string>): Promise<ServeProcess> {
  const port = await freePort();
  let text = '';
  const child: ChildProcess = spawn(process.execPath, [main, 'serve'], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', PDS_PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (exited) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`portage serve exited at start-up:\n${text}`);
    const ok = await fetch(`${url}/xrpc/_health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`portage serve did not become ready:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid!,
    output: () => text,
    rssBytes: () => {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = /VmRSS:\s+(\d+) kB/.exec(status);
      return kb ? Number(kb[1]) * 1024 : 0;
    },
    stop,
  };
}
