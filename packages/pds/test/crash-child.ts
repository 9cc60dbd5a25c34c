/**
 * The kill half of the crash tests: a test file starts itself again as a child
 * (`<file> --crash-child ...args`), the child prints `SEQ <seq> <what>` for every event it saw
 * committed, and the parent SIGKILLs it once it has announced `events` of them.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Runs the child until it has announced `events` events, then SIGKILLs it; resolves to what it announced. */
export function runChildAndKill(script: string, args: string[], events: number): Promise<Map<number, string>> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [script, '--crash-child', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const announced = new Map<number, string>();
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const match = /^SEQ (\d+) (.*)$/.exec(line);
      if (!match) return;
      announced.set(Number(match[1]), match[2]!);
      if (announced.size === events) proc.kill('SIGKILL');
    });
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(announced);
      else reject(new Error(`child exited without being killed (${signal ?? code})`));
    });
  });
}
