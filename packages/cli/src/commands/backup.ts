/**
 * `portage backup`: the account's repo, blobs and preferences into a folder; later runs fetch
 * only what changed. Exit codes: 0 done, 1 failed (safe to run again), 2 bad usage.
 */
import { resolve } from 'node:path';
import {
  badUrlFlag,
  CONCURRENCY_RANGE_MESSAGE,
  createProgressRenderer,
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
  --json                print one JSON event per line

Preferences are private: set PORTAGE_PASSWORD (or PORTAGE_OLD_PASSWORD) to include them.`;

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandFlags('backup', USAGE, args, {
    from: { type: 'string' },
    out: { type: 'string' },
    'from-pds': { type: 'string' },
    'plc-url': { type: 'string' },
    concurrency: { type: 'string' },
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
  const result = await backupAccount(
    {
      from,
      pds: values['from-pds'] as string | undefined,
      plcUrl: values['plc-url'] as string | undefined,
      concurrency,
    },
    {
      onEvent: render,
      fetch: await fetchWithoutClientTimeouts(),
      resolveTxt: nodeResolveTxt,
      password: process.env.PORTAGE_PASSWORD || process.env.PORTAGE_OLD_PASSWORD || undefined,
      openBackup: (did) => new DirectoryBackup(resolve(out ?? `portage-backup-${didAsFolderName(did)}`), did).open(),
    },
  );
  return result.status === 'done' ? 0 : 1;
}
