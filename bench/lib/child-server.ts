/**
 * Benchmarks run each server in a process of its own (so its CPU and peak RSS are its own): the
 * benchmark file starts itself again with server arguments, the child prints one line
 * `READY <payload>` once it serves, and runs until SIGTERM.
 */
import { spawn } from 'node:child_process';

export { freePort } from '../../test/support/reference-peers.ts';

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
