/**
 * `portage backup`: the account's repo, blobs and preferences into a folder; later runs fetch
 * only what changed. With --every it keeps the folder current, one round per interval, until
 * SIGINT/SIGTERM (a round under way is finished first; a second signal stops at once, which is
 * safe too: every file appears whole or not at all). Exit codes: 0 done (or stopped), 1 failed
 * (safe to run again), 2 bad usage.
 */
import { resolve } from 'node:path';
import {
  badUrlFlag,
  CONCURRENCY_RANGE_MESSAGE,
  createProgressRenderer,
  waitForStopSignal,
  didAsFolderName,
  parseCommandFlags,
  parseConcurrency,
  reportUsageError,
  USAGE_EXIT_CODE,
} from '../command-line.ts';

export const description = 'Back up an account (repo, blobs, preferences) into a folder, incrementally';

const USAGE = `Usage: portage backup --from <handle|did> [--out <dir>] [options]

  --from <handle|did>   the account (required)
  --out <dir>           the backup folder (default ./portage-backup-<did>)
  --from-pds <url>      the account's PDS (skip looking it up in the DID document)
  --plc-url <url>       PLC directory (default https://plc.directory)
  --concurrency <n>     parallel blob downloads (default 8)
  --every <interval>    keep the backup current: a round every 30s, 15m, 6h, 1d... until stopped
  --json                print one JSON event per line

Preferences are private: set PORTAGE_PASSWORD (or PORTAGE_OLD_PASSWORD) to include them.`;

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandFlags('backup', USAGE, args, {
    from: { type: 'string' },
    out: { type: 'string' },
    'from-pds': { type: 'string' },
    'plc-url': { type: 'string' },
    concurrency: { type: 'string' },
    every: { type: 'string' },
    json: { type: 'boolean' },
  });
  if ('exitCode' in parsed) return parsed.exitCode;
  const values = parsed.flags;
  const from = values.from as string | undefined;
  if (!from) return reportUsageError('backup', USAGE, '--from is required');
  const badUrl = badUrlFlag(values, ['from-pds', 'plc-url']);
  if (badUrl) return reportUsageError('backup', USAGE, badUrl);
  const concurrency = parseConcurrency(values.concurrency as string | undefined);
  if (concurrency === undefined) {
    process.stderr.write(`portage backup: ${CONCURRENCY_RANGE_MESSAGE}\n`);
    return USAGE_EXIT_CODE;
  }
  const everyText = values.every as string | undefined;
  const everyMs = everyText === undefined ? undefined : parseInterval(everyText);
  if (everyMs === null) {
    return reportUsageError(
      'backup',
      USAGE,
      `--every takes a number and a unit (s, m, h or d), like 15m; not "${everyText}"`,
    );
  }
  const json = values.json === true;
  const render = await createProgressRenderer(json, process.stderr.isTTY === true);
  // The engine is loaded only once the command line is known to be good (see main.ts).
  const { nodeResolveTxt } = await import('@portage/atproto/identity/dns.node');
  const { DirectoryBackup } = await import('@portage/migrate/backup.node');
  const { fetchWithoutClientTimeouts } = await import('@portage/migrate/fetch.node');
  const { backupAccount } = await import('@portage/migrate/backup-run');
  const { startMemoryGuard } = await import('@portage/migrate/memory.node');
  const out = values.out as string | undefined;
  startMemoryGuard();
  const round = () =>
    backupAccount(
      {
        from,
        pds: values['from-pds'] as string | undefined,
        plcUrl: values['plc-url'] as string | undefined,
        concurrency,
      },
      {
        onEvent: render,
        fetch: fetchImpl,
        resolveTxt: nodeResolveTxt,
        password: process.env.PORTAGE_PASSWORD || process.env.PORTAGE_OLD_PASSWORD || undefined,
        openBackup: (did) => new DirectoryBackup(resolve(out ?? `portage-backup-${didAsFolderName(did)}`), did).open(),
      },
    );
  const fetchImpl = await fetchWithoutClientTimeouts();
  if (everyMs === undefined) return (await round()).status === 'done' ? 0 : 1;

  // A failed round (a server down for a while) does not end the schedule: the next one resumes.
  let stopped = false;
  const stop = waitForStopSignal().then(() => {
    stopped = true;
  });
  while (!stopped) {
    await round();
    if (stopped) break;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stop, new Promise<void>((done) => (timer = setTimeout(done, everyMs)))]);
    clearTimeout(timer);
  }
  if (!json) process.stderr.write('Stopped. The backup holds what the last finished round saved.\n');
  return 0;
}

/** "90s", "15m", "6h", "1d" as milliseconds; null when it is not one of those. */
function parseInterval(text: string): number | null {
  const match = /^(\d+)\s*(s|m|h|d)$/.exec(text.trim());
  if (!match) return null;
  const n = Number(match[1]);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
  const ms = n * unit;
  return n >= 1 && ms <= 2 ** 31 - 1 ? ms : null;
}
