/** What the benchmarks ask of the machine itself: quiet before a timed run, the CPU a run used. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Writes every dirty page to disk and lets the machine go quiet before a timed run: the setup
 * (and the run before) leave tens of MB in the page cache, which the kernel would otherwise
 * write back, on the same two cores, during whichever run comes next, and bill it to that run.
 */
export async function settle(busy: () => number | undefined = () => undefined): Promise<void> {
  execFileSync('sync');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await quiet(busy);
}

/**
 * Waits, for at most `limitMs`, until `cpuSeconds` (the CPU used so far by some processes) grows
 * by under 5% of a core over a quarter second: a server still finishing the setup's work, or a
 * browser still starting up, would otherwise bill that work to the timed run that comes next.
 */
async function quiet(cpuSeconds: () => number | undefined, limitMs = 15_000): Promise<void> {
  const windowMs = 250;
  const deadline = performance.now() + limitMs;
  let before = cpuSeconds();
  while (before !== undefined && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const now = cpuSeconds();
    if (now === undefined || now - before < 0.05 * (windowMs / 1000)) return;
    before = now;
  }
}

/** The CPU seconds the processes `pids` used so far, together (for settle); undefined without /proc. */
export function cpuOf(pids: number[]): () => number | undefined {
  return () => {
    const each = pids.map(processCpuSeconds);
    return each.includes(undefined) ? undefined : (each as number[]).reduce((a, b) => a + b, 0);
  };
}

/**
 * CPU seconds (user + system, all threads) a process has used so far, from /proc; undefined
 * where there is no /proc (the figure is then left out).
 */
function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // In 1/100 s (USER_HZ) on every architecture Node runs on.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * Runs `run` and measures the CPU seconds the processes `pids` used meanwhile (together), and
 * the wall-clock seconds it took; cpuSeconds is undefined where /proc cannot tell.
 */
export async function measureCpu<T>(
  pids: number[],
  run: () => Promise<T>,
): Promise<{ result: T; cpuSeconds: number | undefined; seconds: number }> {
  const total = cpuOf(pids);
  const before = total();
  const t0 = performance.now();
  const result = await run();
  const seconds = (performance.now() - t0) / 1000;
  const after = total();
  return { result, cpuSeconds: before === undefined || after === undefined ? undefined : after - before, seconds };
}

/**
 * CPU seconds used so far by this process's descendants whose command name matches `name`
 * (Chromium's browser, renderer and utility processes), from /proc; undefined without /proc.
 */
export function descendantCpuSeconds(name: RegExp): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return undefined;
  }
  const parents = new Map<number, { ppid: number; comm: string }>();
  for (const entry of entries) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), { ppid, comm });
    } catch {
      // Ended while listed.
    }
  }
  const descends = (pid: number): boolean => {
    for (let at = parents.get(pid)?.ppid; at !== undefined && at > 1; at = parents.get(at)?.ppid) {
      if (at === process.pid) return true;
    }
    return false;
  };
  let total = 0;
  for (const [pid, { comm }] of parents) {
    if (name.test(comm) && descends(pid)) total += processCpuSeconds(pid) ?? 0;
  }
  return total;
}
