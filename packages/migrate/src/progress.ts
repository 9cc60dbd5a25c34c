/**
 * Rate and ETA for one step. The rate is an exponentially smoothed bytes-per-second (jumpy
 * per-blob figures are useless to a human); the ETA comes from the unit rate (blobs or bytes per
 * second over the whole step) since that is what a total is known for. Emission is throttled so
 * a thousand small blobs do not mean a thousand redraws.
 */
import type { EventSink, ProgressFigures, StepName } from './events.ts';

export class ProgressTracker {
  readonly #step: StepName;
  readonly #emit: EventSink;
  readonly #unit: 'bytes' | 'blobs';
  readonly #start = Date.now();
  readonly #intervalMs: number;
  #done = 0;
  #bytes = 0;
  #total: number | undefined;
  #rate = 0;
  #lastSample = Date.now();
  #lastSampleBytes = 0;
  #lastEmit = 0;

  constructor(step: StepName, unit: 'bytes' | 'blobs', emit: EventSink, total?: number, intervalMs = 250) {
    this.#step = step;
    this.#unit = unit;
    this.#emit = emit;
    this.#total = total;
    this.#intervalMs = intervalMs;
  }

  setTotal(total: number | undefined): void {
    this.#total = total;
  }

  addBytes(n: number): void {
    this.#bytes += n;
    if (this.#unit === 'bytes') this.#done += n;
    this.#maybeEmit();
  }

  addDone(n = 1): void {
    if (this.#unit === 'blobs') this.#done += n;
    this.#maybeEmit();
  }

  figures(): ProgressFigures {
    const now = Date.now();
    const dt = (now - this.#lastSample) / 1000;
    if (dt >= 0.2) {
      const instant = (this.#bytes - this.#lastSampleBytes) / dt;
      this.#rate = this.#rate === 0 ? instant : this.#rate * 0.7 + instant * 0.3;
      this.#lastSample = now;
      this.#lastSampleBytes = this.#bytes;
    }
    const elapsed = (now - this.#start) / 1000;
    const figures: ProgressFigures = {
      done: this.#done,
      unit: this.#unit,
      bytes: this.#bytes,
      bytesPerSecond: Math.round(this.#rate),
    };
    if (this.#total !== undefined) {
      figures.total = this.#total;
      const unitRate = elapsed > 0.5 ? this.#done / elapsed : 0;
      if (unitRate > 0) figures.etaSeconds = Math.max(0, Math.round((this.#total - this.#done) / unitRate));
    }
    return figures;
  }

  /** Emits now regardless of throttling (at the end of a step). */
  flush(): void {
    this.#lastEmit = Date.now();
    this.#emit({ type: 'step-progress', step: this.#step, ...this.figures() });
  }

  #maybeEmit(): void {
    if (Date.now() - this.#lastEmit >= this.#intervalMs) this.flush();
  }
}

/** A pass-through stream that reports every chunk's size. */
export function countingStream(onChunk: (bytes: number) => void): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      onChunk(chunk.byteLength);
      controller.enqueue(chunk);
    },
  });
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}
