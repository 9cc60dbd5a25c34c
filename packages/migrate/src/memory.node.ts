/**
 * Keeps the CLI's memory flat while gigabytes stream through it. Every chunk of every transfer
 * is a short-lived ArrayBuffer; V8 counts those as external memory and only collects them when
 * that passes its own limit (tens of MB), so resident memory climbs well above what is actually
 * live. Here a timer runs a young-generation collection whenever array-buffer memory exceeds a
 * budget, which keeps the peak close to the live set at a cost of a few ms per collection.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options?: { type?: 'minor' | 'major'; execution?: 'sync' }) => void;

/** Starts the guard; returns a function that stops it. */
export function startMemoryGuard(opts: { budgetMb?: number; intervalMs?: number } = {}): () => void {
  const budget = (opts.budgetMb ?? 24) * 1024 * 1024;
  let gc = (globalThis as { gc?: Gc }).gc;
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as Gc;
  }
  const collect = gc;
  let rounds = 0;
  const timer = setInterval(() => {
    const { arrayBuffers } = process.memoryUsage();
    if (arrayBuffers > budget) collect({ type: ++rounds % 8 === 0 ? 'major' : 'minor' });
  }, opts.intervalMs ?? 100);
  timer.unref();
  return () => clearInterval(timer);
}
