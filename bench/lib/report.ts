/**
 * The one output format of every benchmark: a JSON object per figure, printed as a line and
 * collected into bench/results/<bench>.json. `ratio` is oriented so that > 1 means Portage is
 * better, whichever direction the metric improves in.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Figure {
  bench: string;
  metric: string;
  unit: string;
  better: 'higher' | 'lower';
  portage: number;
  reference: number | null;
  ratio: number | null;
}

const figures: Figure[] = [];

export function report(figure: Omit<Figure, 'ratio'>): Figure {
  const { portage, reference, better } = figure;
  let ratio: number | null = null;
  if (reference !== null && reference > 0 && portage > 0) {
    ratio = better === 'higher' ? portage / reference : reference / portage;
    ratio = Math.round(ratio * 100) / 100;
  }
  const full: Figure = {
    ...figure,
    portage: round(portage),
    reference: reference === null ? null : round(reference),
    ratio,
  };
  figures.push(full);
  process.stdout.write(`${JSON.stringify(full)}\n`);
  return full;
}

function round(n: number): number {
  return Math.abs(n) >= 100 ? Math.round(n) : Math.round(n * 1000) / 1000;
}

/** Writes every figure reported so far to bench/results/<name>.json. */
export function writeResults(name: string): string {
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  writeFileSync(
    path,
    `${JSON.stringify(
      figures.filter((f) => f.bench === name),
      null,
      2,
    )}\n`,
  );
  return path;
}

/** Peak resident set size of this process so far, in MB. */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export async function timeIt<T>(fn: () => Promise<T> | T): Promise<{ seconds: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { seconds: (performance.now() - start) / 1000, value };
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
