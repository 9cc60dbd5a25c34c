/**
 * Keeps the CLI's memory flat while gigabytes stream through it. Every chunk of every transfer
 * is a short-lived ArrayBuffer; V8 counts those as external memory and only collects them when
 * that passes its own limit (64 MB), so resident memory climbs well above what is actually live.
 * Here a timer (every 25 ms) runs a full collection whenever array-buffer memory has grown by a
 * budget (24 MB) over what the last collection left. Full, because these buffers mostly outlive a
 * young-generation collection (they wait in stream queues), so a minor one frees almost none of
 * them. And growth, not a fixed ceiling, because the live transfers alone may hold more than the
 * budget (the prefetch and the blob phase each have 8 MB in flight): a fixed ceiling would
 * collect on every tick.
 *
 * The budget and the transfers' in-flight caps share one bound (40 MB over the CLI's own memory).
 * A full collection mid-migration costs 15-20 ms of CPU here: with 8 MB for garbage and 32 MB
 * in flight, the guard forced 20-30 of them while 200 images moved, a fifth of the client's CPU;
 * with 24 MB, V8's own collections keep up and the guard steps in once or twice. Moving 1 GB of
 * 5 MB blobs peaks at the same RSS either way (136 MB).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options?: { type?: 'major'; execution?: 'sync' }) => void;

/** Starts the guard; returns a function that stops it. */
export function startMemoryGuard(opts: { budgetMb?: number; intervalMs?: number } = {}): () => void {
  let gc = (globalThis as { gc?: Gc }).gc;
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as Gc;
  }
  const collect = gc;
  const check = memoryGuardCheck({
    budgetBytes: (opts.budgetMb ?? 24) * 1024 * 1024,
    arrayBufferBytes: () => process.memoryUsage().arrayBuffers,
    collect: () => collect({ type: 'major' }),
  });
  const timer = setInterval(check, opts.intervalMs ?? 25);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * One tick of the guard: collects when array-buffer memory is more than `budgetBytes` above what
 * was live after the last collection. The baseline also follows memory down when V8's own
 * collections free it meanwhile; otherwise one busy moment would raise it for the rest of the
 * run and let memory grow by far more than the budget before the next collection.
 */
export function memoryGuardCheck(probe: {
  budgetBytes: number;
  arrayBufferBytes: () => number;
  collect: () => void;
}): () => void {
  let live = 0;
  return () => {
    const now = probe.arrayBufferBytes();
    if (now < live) live = now;
    if (now <= live + probe.budgetBytes) return;
    probe.collect();
    live = probe.arrayBufferBytes();
  };
}
