/**
 * Showing migration events in a terminal (Node): progress bars with rate and ETA on a TTY, plain
 * lines otherwise, or one JSON object per line. Plus the hidden password prompt.
 */
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import { formatBytes } from './progress.ts';
import type { MigrationEvent, StepName } from './events.ts';
import { describeNextStep, type NextStep } from './next-steps.ts';

export interface RendererOptions {
  json: boolean;
  tty: boolean;
  out: Writable;
  /** Words a next step in the caller's terms (a CLI names its flags); default: plain sentences. */
  describeNext?: (next: NextStep) => string;
}

export function createRenderer(opts: RendererOptions): (event: MigrationEvent) => void {
  const describe = opts.describeNext ?? describeNextStep;
  if (opts.json) {
    return (event) => {
      // `next` is the sentence in the caller's terms; `nextStep` stays for scripts that decide.
      const worded = 'nextStep' in event && event.nextStep && 'next' in event ? { next: describe(event.nextStep) } : {};
      opts.out.write(`${JSON.stringify({ ...event, ...worded })}\n`);
    };
  }
  let barShown = false;
  let current: StepName | undefined;
  /** True once the reason the run stops has been printed with its next step. */
  let advised = false;
  const clearBar = () => {
    if (barShown) opts.out.write('\r\x1b[2K');
    barShown = false;
  };
  return (event) => {
    switch (event.type) {
      case 'step-started':
        clearBar();
        current = event.step;
        if (opts.tty) opts.out.write(`… ${event.title}\n`);
        break;
      case 'step-progress': {
        if (!opts.tty) return;
        clearBar();
        opts.out.write(progressLine(event));
        barShown = true;
        break;
      }
      case 'step-done':
        clearBar();
        opts.out.write(`${event.skipped ? '·' : '✓'} ${event.summary}\n`);
        break;
      case 'step-failed':
        clearBar();
        opts.out.write(`✗ ${event.message}\n  → ${describe(event.nextStep)}\n`);
        // A failed deactivation of the old account still ends in a finished move, said below.
        advised = event.step !== 'deactivate-old';
        break;
      case 'warning':
        clearBar();
        opts.out.write(`! ${event.message}\n`);
        break;
      case 'notice':
        clearBar();
        opts.out.write(`\n${event.message}\n\n`);
        break;
      case 'waiting-for-plc-token':
        clearBar();
        opts.out.write(`${event.message}\n  → ${describe(event.nextStep)}\n`);
        advised = true;
        break;
      case 'finished':
        clearBar();
        if (event.missingBlobs?.length) {
          opts.out.write('Missing blobs:\n');
          for (const b of event.missingBlobs)
            opts.out.write(`  ${b.cid}${b.record ? ` in ${b.record}` : ''}: ${b.reason}\n`);
        }
        if (advised) break; // the failure and its next step are on screen already
        opts.out.write(`${event.status === 'done' ? 'Done: ' : ''}${event.message}\n`);
        if (event.nextStep && event.status !== 'done') opts.out.write(`  → ${describe(event.nextStep)}\n`);
        break;
    }
    void current;
  };
}

function progressLine(e: Extract<MigrationEvent, { type: 'step-progress' }>): string {
  const width = 24;
  const ratio = e.total ? Math.min(1, e.done / e.total) : undefined;
  const bar = ratio === undefined ? '' : `[${'#'.repeat(Math.round(ratio * width)).padEnd(width, '.')}] `;
  const amount =
    e.unit === 'bytes'
      ? `${formatBytes(e.done)}${e.total ? ` / ${formatBytes(e.total)}` : ''}`
      : `${e.done}${e.total !== undefined ? ` / ${e.total}` : ''} blobs, ${formatBytes(e.bytes)}`;
  const eta = e.etaSeconds !== undefined ? `, ETA ${formatDuration(e.etaSeconds)}` : '';
  return `  ${bar}${amount} at ${formatBytes(e.bytesPerSecond)}/s${eta}`;
}

function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Asks a question on the terminal; with `hidden`, typed characters are not echoed. */
export async function prompt(question: string, hidden = false): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (hidden) {
    const write = (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput.bind(rl);
    let asked = false;
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
      if (!asked) {
        asked = true;
        write(s);
      }
    };
  }
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    if (hidden) process.stderr.write('\n');
    rl.close();
  }
}
