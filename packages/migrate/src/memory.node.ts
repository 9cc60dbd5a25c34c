/**
 * Keeps the CLI's memory flat while gigabytes stream through it. Every chunk of every transfer
 * is a short-lived ArrayBuffer; V8 counts those as external memory and only collects them when
 * that passes its own limit (tens of MB), so resident memory climbs well above what is actually
 * live. Here a timer (every 25 ms) runs a full collection whenever array-buffer memory has grown
 * by a budget (8 MB) over what the last collection left. Full, because these buffers mostly
 * outlive a young-generation collection (they wait in stream queues), so a minor one frees almost
 * none of them. And growth, not a fixed ceiling, because the live transfers alone may hold more
 * than the budget (the prefetch and the blob phase each have 16 MB in flight): a fixed ceiling
 * would collect on every tick.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options?: { type?: 'major'; execution?: 'sync' }) => void;

/** Starts the guard; returns a function that stops it. */
export function startMemoryGuard(opts: { budgetMb?: number; intervalMs?: number } = {}): () => void {
  const budget = (opts.budgetMb ?? 8) * 1024 * 1024;
  let gc = (globalThis as { gc?: Gc }).gc;
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as Gc;
  }
  const collect = gc;
  // Array-buffer memory just after the last collection: about what is live.
  let live = 0;
  const timer = setInterval(() => {
    if (process.memoryUsage().arrayBuffers <= live + budget) return;
    collect({ type: 'major' });
    live = process.memoryUsage().arrayBuffers;
  }, opts.intervalMs ?? 25);
  timer.unref();
  return () => clearInterval(timer);
}
