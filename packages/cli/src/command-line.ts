/**
 * What the account commands (`migrate`, `backup`) share about reading their command line and
 * reporting progress, so both answer bad usage, --help and --json the same way. Lives beside
 * ./commands rather than in it: every file there is listed as a subcommand.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { createRenderer } from '@portage/migrate/terminal.node';

export type CommandFlags = Record<string, string | boolean | undefined>;

/** Exit code for bad usage (a missing or malformed flag). */
export const USAGE_EXIT_CODE = 2;

/** Prints `portage <command>: <why>` and the usage text to stderr; returns the bad-usage exit code. */
export function reportUsageError(command: string, usage: string, why: string): number {
  process.stderr.write(`portage ${command}: ${why}\n\n${usage}\n`);
  return USAGE_EXIT_CODE;
}

/**
 * Parses the flags strictly (unknown flags are usage errors) and handles --help / -h itself.
 * Returns the flags, or the exit code to stop with when there is nothing more to do.
 */
export function parseCommandFlags(
  command: string,
  usage: string,
  args: string[],
  options: ParseArgsOptionsConfig,
): { flags: CommandFlags } | { exitCode: number } {
  let flags: CommandFlags;
  try {
    ({ values: flags } = parseArgs({
      args,
      strict: true,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    return { exitCode: reportUsageError(command, usage, (err as Error).message) };
  }
  if (flags.help) {
    process.stdout.write(`${usage}\n`);
    return { exitCode: 0 };
  }
  return { flags };
}

export const DEFAULT_CONCURRENCY = 8;
export const CONCURRENCY_RANGE_MESSAGE = '--concurrency must be a whole number from 1 to 64';

/** The --concurrency flag (parallel blob transfers): the default when absent, undefined when out of range. */
export function parseConcurrency(text: string | undefined): number | undefined {
  if (text === undefined) return DEFAULT_CONCURRENCY;
  const concurrency = Number(text);
  return Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 64 ? concurrency : undefined;
}

/**
 * The progress renderer: with --json one event per line on stdout (for scripts), otherwise human
 * lines on stderr, redrawn in place only when `terminal` says a person is watching.
 */
export function createProgressRenderer(json: boolean, terminal: boolean): ReturnType<typeof createRenderer> {
  return createRenderer({ json, tty: !json && terminal, out: json ? process.stdout : process.stderr });
}

/** A DID as one safe path segment (did:plc:abc -> did_plc_abc), for per-account folders. */
export function didAsFolderName(did: string): string {
  return did.replace(/[^a-zA-Z0-9._-]/g, '_');
}
