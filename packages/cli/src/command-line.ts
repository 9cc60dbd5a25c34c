/**
 * What the subcommands share about reading their command line, reporting progress and running
 * until stopped, so they answer bad usage, --help, --json and Ctrl-C the same way. Lives beside
 * ./commands rather than in it: every file there is listed as a subcommand.
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import type { createRenderer } from '@portage/migrate/terminal.node';
import { normalizeServiceUrl } from '@portage/atproto/identity/service-url';

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

/**
 * For commands configured only by the environment: prints `help` (which ends in a newline) for
 * --help / -h (exit 0), rejects any other argument (exit 2). Undefined means: go on and run.
 */
export function handleHelpAndStrayArguments(command: string, help: string, args: string[]): number | undefined {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(help);
    return 0;
  }
  if (args.length > 0) {
    process.stderr.write(`portage ${command}: unexpected argument "${args[0]}"\n\n${help}`);
    return USAGE_EXIT_CODE;
  }
  return undefined;
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
 * The first of `flags` (URL flags such as `to`, `from-pds`, `plc-url`) whose value is given but
 * is not an http(s) URL, as a usage message; undefined when all are fine.
 */
export function badUrlFlag(values: CommandFlags, flags: string[]): string | undefined {
  for (const flag of flags) {
    const value = values[flag];
    if (typeof value !== 'string') continue;
    if (normalizeServiceUrl(value) === undefined) return `--${flag} must be an http(s) URL, not "${value}"`;
  }
  return undefined;
}

/**
 * The progress renderer: with --json one event per line on stdout (for scripts), otherwise human
 * lines on stderr, redrawn in place only when `terminal` says a person is watching.
 */
export async function createProgressRenderer(
  json: boolean,
  terminal: boolean,
): Promise<ReturnType<typeof createRenderer>> {
  const [{ createRenderer }, { commandLineNextStep }] = await Promise.all([
    import('@portage/migrate/terminal.node'),
    import('./next-step.ts'),
  ]);
  return createRenderer({
    json,
    tty: !json && terminal,
    out: json ? process.stdout : process.stderr,
    describeNext: commandLineNextStep,
  });
}

/** A DID as one safe path segment (did:plc:abc -> did_plc_abc), for per-account folders. */
export function didAsFolderName(did: string): string {
  return did.replace(/[^a-zA-Z0-9._-]/g, '_');
}

/** Where `portage plc`, and `portage serve` when it embeds the directory, listen by default. */
export const DEFAULT_PLC_PORT = 2582;

/** A port number from the environment: `defaultPort` when unset or empty, undefined when not 0-65535. */
export function parsePortNumber(text: string | undefined, defaultPort: number): number | undefined {
  if (text === undefined || text === '') return defaultPort;
  if (!/^\d+$/.test(text) || Number(text) > 65535) return undefined;
  return Number(text);
}

/** Resolves with the first SIGINT or SIGTERM, then stops listening for them (a second one kills). */
export function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((done) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done(signal);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
